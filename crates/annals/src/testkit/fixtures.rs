//! Small aggregates used by the conformance suite: a tally, and a person whose event changed shape.

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::typed::DomainEvent;

/// A tally of added amounts; keeps every amount so replay order is visible in the state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Sum of amounts.
    pub total: i64,
    /// Every amount, in order.
    pub history: Vec<i64>,
}

/// Events of [`Tally`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TallyEvent {
    /// An amount was added.
    Added {
        /// The amount.
        amount: i64,
    },
    /// The tally was reset to zero.
    Reset,
}
impl DomainEvent for TallyEvent {}

/// Commands of [`Tally`].
#[derive(Clone, Debug)]
pub enum TallyCommand {
    /// Add a positive amount.
    Add(i64),
    /// Add several amounts in one command.
    AddMany(Vec<i64>),
    /// Reset to zero (refused when already zero).
    Reset,
}

/// Why a [`Tally`] refused a command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TallyError {
    /// Amounts must be positive.
    #[error("amount {0} is not positive")]
    NotPositive(i64),
    /// Nothing to reset.
    #[error("the tally is already zero")]
    AlreadyZero,
}

impl Aggregate for Tally {
    const STREAM_TYPE: &'static str = "Tally";
    type Event = TallyEvent;
    type Command = TallyCommand;
    type Error = TallyError;

    fn handle(&self, command: &TallyCommand) -> Result<Vec<TallyEvent>, TallyError> {
        let add = |a: i64| {
            if a > 0 {
                Ok(TallyEvent::Added { amount: a })
            } else {
                Err(TallyError::NotPositive(a))
            }
        };
        match command {
            TallyCommand::Add(a) => Ok(vec![add(*a)?]),
            TallyCommand::AddMany(all) => all.iter().map(|a| add(*a)).collect(),
            TallyCommand::Reset if self.total == 0 => Err(TallyError::AlreadyZero),
            TallyCommand::Reset => Ok(vec![TallyEvent::Reset]),
        }
    }

    fn apply(&mut self, event: &TallyEvent) {
        match event {
            TallyEvent::Added { amount } => {
                self.total += amount;
                self.history.push(*amount);
            }
            TallyEvent::Reset => self.total = 0,
        }
    }
}

/// The same streams as [`Tally`] read with a newer snapshot schema: its snapshots of
/// version 1 are stale.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyV2(pub Tally);

impl Aggregate for TallyV2 {
    const STREAM_TYPE: &'static str = "Tally";
    const SNAPSHOT_VERSION: u32 = 2;
    type Event = TallyEvent;
    type Command = TallyCommand;
    type Error = TallyError;
    fn handle(&self, command: &TallyCommand) -> Result<Vec<TallyEvent>, TallyError> {
        self.0.handle(command)
    }
    fn apply(&mut self, event: &TallyEvent) {
        self.0.apply(event)
    }
}

/// A person whose `Named` event was `{"name": "Ada Lovelace"}` in schema 1 and is
/// `{"first": "Ada", "last": "Lovelace"}` in schema 2.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// First name.
    pub first: String,
    /// Last name.
    pub last: String,
}

/// Events of [`Person`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PersonEvent {
    /// The person was named (schema 2).
    Named {
        /// First name.
        first: String,
        /// Last name.
        last: String,
    },
}

impl DomainEvent for PersonEvent {
    fn schema_version(event_type: &str) -> u32 {
        if event_type == "Named" { 2 } else { 1 }
    }
}

/// Why a [`Person`] refused a command.
#[derive(Debug, thiserror::Error)]
#[error("a person needs a first and a last name")]
pub struct IncompleteName;

impl Aggregate for Person {
    const STREAM_TYPE: &'static str = "Person";
    type Event = PersonEvent;
    type Command = (String, String);
    type Error = IncompleteName;
    fn handle(&self, (first, last): &(String, String)) -> Result<Vec<PersonEvent>, IncompleteName> {
        if first.is_empty() || last.is_empty() {
            return Err(IncompleteName);
        }
        Ok(vec![PersonEvent::Named {
            first: first.clone(),
            last: last.clone(),
        }])
    }
    fn apply(&mut self, PersonEvent::Named { first, last }: &PersonEvent) {
        self.first = first.clone();
        self.last = last.clone();
    }
}

/// The upcaster from `Named` v1 (`name`) to v2 (`first`, `last`).
pub fn person_upcasters() -> crate::upcast::Upcasters {
    crate::upcast::Upcasters::new().add("Named", 1, |mut v| {
        let name = v
            .get_mut("name")
            .and_then(|n| n.as_str().map(str::to_owned))
            .ok_or("no `name` field")?;
        let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
        Ok(serde_json::json!({ "first": first, "last": last }))
    })
}

/// Crypto-shredding fixtures: `Registered {person_id, email, city}` events of `Person` streams,
/// whose `email` is personal data of `person_id`.
pub mod people {
    use serde_json::json;

    use crate::event::NewEvent;
    use crate::ids::{ExpectedVersion, StreamId};
    use crate::privacy::PersonalFields;
    use crate::store::EventStore;

    /// `email` of `Registered` events is personal, its subject `person_id`.
    pub fn fields() -> PersonalFields {
        PersonalFields::new().field("Person", "Registered", "email", "person_id")
    }

    /// The registration of person `id` with e-mail `<id>@example.org`, in Lyon.
    pub fn registered(id: &str) -> NewEvent {
        NewEvent::from_value(
            "Registered",
            &json!({ "person_id": id, "email": format!("{id}@example.org"), "city": "Lyon" }),
        )
    }

    /// Registers persons `p0` … `p<n-1>`, each in stream `person-<i>`, through `store`.
    pub async fn register<S: EventStore>(store: &S, n: usize) {
        for i in 0..n {
            store
                .append_to_stream(
                    StreamId::new(format!("person-{i}")).expect("a valid id"),
                    "Person",
                    ExpectedVersion::NoStream,
                    vec![registered(&format!("p{i}"))],
                )
                .await
                .expect("registered");
        }
    }
}
