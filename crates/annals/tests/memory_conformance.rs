//! The conformance suite on the in-memory backend.

use std::sync::Arc;

use annals::MemoryStore;

annals::conformance_tests!(|| async { (Arc::new(MemoryStore::new()), ()) });
