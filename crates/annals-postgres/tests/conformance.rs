//! The conformance suite on PostgreSQL (127.0.0.1:5432, or `ANNALS_TEST_PG`): each test gets a
//! fresh schema, dropped when the test ends.

mod common;

annals::conformance_tests!(common::fresh);
