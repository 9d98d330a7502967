//! Given/when/then for aggregates: `given(events).when(command).then(events)` without any store.

use std::fmt::Debug;

use crate::aggregate::Aggregate;

/// Starts a scenario from the events that already happened.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut state = A::default();
    for e in events {
        state.apply(&e);
    }
    Given { state }
}

/// An aggregate state built from past events.
pub struct Given<A> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    /// Handles `command` against the state.
    pub fn when(self, command: A::Command) -> When<A> {
        let result = self.state.handle(&command);
        When {
            state: self.state,
            result,
        }
    }
}

/// The outcome of a command in a scenario.
pub struct When<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> When<A>
where
    A::Event: PartialEq + Debug,
    A::Error: Debug,
{
    /// Asserts the command produced exactly `expected`; returns the state after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<_> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "the command produced other events than expected");
                let mut state = self.state;
                for e in &events {
                    state.apply(e);
                }
                state
            }
            Err(e) => panic!("expected events {expected:?}, but the command was rejected: {e:?}"),
        }
    }

    /// Asserts the command was rejected with an error `check` accepts.
    #[track_caller]
    pub fn then_error(self, check: impl FnOnce(&A::Error) -> bool) {
        match self.result {
            Ok(events) => panic!("expected a rejection, but the command produced {events:?}"),
            Err(e) => assert!(check(&e), "the command was rejected with an unexpected error: {e:?}"),
        }
    }
}
