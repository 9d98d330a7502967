//! The saga layer without FTGO: the pure orchestrator (given/when/then, no store) and the
//! orchestrator and participant handlers on the in-memory store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use annals::consume::EventHandler;
use annals::saga::{
    CommandMessage, Handled, Message, Orchestrator, Participant, ParticipantHandler, Reply, ReplyBody, Saga,
    SagaCommand, SagaEvent, SagaInput, SagaInstance, SagaStatus, Step, reply_stream,
};
use annals::{EventStore, MemoryStore, Metadata, ReadStream, StreamId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Trip {
    nights: u32,
    hotel: Option<String>,
    checked: bool,
}

#[derive(Serialize, Deserialize)]
struct BookHotel {
    nights: u32,
}
impl Message for BookHotel {
    const TYPE: &'static str = "BookHotel";
}
#[derive(Serialize, Deserialize)]
struct Booked {
    reference: String,
}
impl Message for Booked {
    const TYPE: &'static str = "Booked";
}
#[derive(Serialize, Deserialize)]
struct CancelHotel {
    reference: String,
}
impl Message for CancelHotel {
    const TYPE: &'static str = "CancelHotel";
}
#[derive(Serialize, Deserialize)]
struct Charge;
impl Message for Charge {
    const TYPE: &'static str = "Charge";
}
#[derive(Serialize, Deserialize)]
struct Unreserve;
impl Message for Unreserve {
    const TYPE: &'static str = "Unreserve";
}

fn book(t: &Trip) -> SagaCommand {
    SagaCommand::of("hotel", &BookHotel { nights: t.nights })
}
fn booked(t: &mut Trip, r: &Reply) {
    t.hotel = r.decode::<Booked>().map(|b| b.reference);
}
fn cancel(t: &Trip) -> SagaCommand {
    SagaCommand::of(
        "hotel",
        &CancelHotel {
            reference: t.hotel.clone().unwrap_or_default(),
        },
    )
}
fn charge(_: &Trip) -> SagaCommand {
    SagaCommand::of("payments", &Charge)
}
fn unreserve(_: &Trip) -> SagaCommand {
    SagaCommand::of("seats", &Unreserve)
}
fn check(t: &mut Trip) -> Result<(), String> {
    if t.nights > 14 {
        return Err(format!("{} nights is more than 14", t.nights));
    }
    t.checked = true;
    Ok(())
}

struct TripSaga;
static STEPS: [Step<Trip>; 4] = [
    Step::done_before("reserve seat").compensate_with(unreserve),
    Step::local("check length", check),
    Step::invoke("book hotel", book)
        .on_reply(booked)
        .compensate_with(cancel),
    Step::invoke("charge", charge),
];
impl Saga for TripSaga {
    const SAGA_TYPE: &'static str = "Trip";
    const COMPENSATION_ATTEMPTS: u32 = 2;
    type Data = Trip;
    fn steps() -> &'static [Step<Trip>] {
        &STEPS
    }
}

fn started(nights: u32) -> SagaInstance<TripSaga> {
    let mut saga = SagaInstance::<TripSaga>::default();
    saga.run(&SagaInput::Start {
        saga_id: "trip-1".into(),
        data: Trip {
            nights,
            ..Trip::default()
        },
    });
    saga
}

fn answer(saga: &mut SagaInstance<TripSaga>, body: ReplyBody) -> (Reply, Vec<SagaEvent<Trip>>) {
    let command = saga.pending_message().expect("a pending command");
    let reply = Reply::to(&command, Uuid::now_v7(), body);
    let events = saga.run(&SagaInput::Reply(reply.clone()));
    (reply, events)
}

fn pending_type(saga: &SagaInstance<TripSaga>) -> Option<(String, String, bool)> {
    saga.pending_message()
        .map(|m| (m.command.channel, m.command.command_type, m.compensation))
}

#[test]
fn a_saga_runs_its_steps_in_order_and_completes() {
    let mut saga = started(3);
    assert!(saga.data.as_ref().unwrap().checked, "the local step ran");
    assert_eq!(pending_type(&saga), Some(("hotel".into(), "BookHotel".into(), false)));
    let book = saga.pending_message().unwrap();
    assert_eq!(book.command.payload["nights"], 3);
    answer(
        &mut saga,
        ReplyBody::success(&Booked {
            reference: "H-7".into(),
        }),
    );
    assert_eq!(saga.data.as_ref().unwrap().hotel.as_deref(), Some("H-7"));
    assert_eq!(pending_type(&saga), Some(("payments".into(), "Charge".into(), false)));
    let (_, events) = answer(&mut saga, ReplyBody::done());
    assert!(matches!(
        events.last(),
        Some(SagaEvent::SagaCompleted { compensated: false })
    ));
    assert_eq!(saga.status, SagaStatus::Succeeded);
    assert_eq!(saga.pending, None);
}

#[test]
fn a_failed_step_compensates_the_completed_steps_last_first() {
    let mut saga = started(3);
    answer(
        &mut saga,
        ReplyBody::success(&Booked {
            reference: "H-7".into(),
        }),
    );
    let (_, events) = answer(&mut saga, ReplyBody::failure("card declined"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SagaEvent::CompensationStarted { step: 3, reason } if reason == "card declined"))
    );
    assert_eq!(saga.status, SagaStatus::Compensating);
    let cancel = saga.pending_message().unwrap();
    assert_eq!(
        (cancel.command.command_type.as_str(), cancel.compensation),
        ("CancelHotel", true)
    );
    assert_eq!(
        cancel.command.payload["reference"], "H-7",
        "the compensation sees the reply's data"
    );
    answer(&mut saga, ReplyBody::done());
    // The local step has no compensation; the step done before the saga has one.
    assert_eq!(pending_type(&saga), Some(("seats".into(), "Unreserve".into(), true)));
    answer(&mut saga, ReplyBody::done());
    assert_eq!(saga.status, SagaStatus::Compensated);
    assert_eq!(saga.failure.as_deref(), Some("card declined"));
}

#[test]
fn a_failing_local_step_starts_compensation_at_once() {
    let saga = started(20);
    assert_eq!(saga.status, SagaStatus::Compensating);
    assert_eq!(saga.failure.as_deref(), Some("20 nights is more than 14"));
    assert_eq!(pending_type(&saga), Some(("seats".into(), "Unreserve".into(), true)));
}

#[test]
fn a_duplicate_reply_is_ignored() {
    let mut saga = started(3);
    let (reply, events) = answer(
        &mut saga,
        ReplyBody::success(&Booked {
            reference: "H-7".into(),
        }),
    );
    assert!(!events.is_empty());
    let version = saga.version;
    assert_eq!(
        saga.run(&SagaInput::Reply(reply)),
        vec![],
        "the same reply again changes nothing"
    );
    assert_eq!(saga.version, version);
    assert_eq!(pending_type(&saga), Some(("payments".into(), "Charge".into(), false)));
}

#[test]
fn a_reply_to_a_superseded_command_is_ignored() {
    let mut saga = started(3);
    let book = saga.pending_message().unwrap();
    answer(
        &mut saga,
        ReplyBody::success(&Booked {
            reference: "H-7".into(),
        }),
    );
    // A second, different reply to the hotel booking arrives late (say, from a retried request).
    let late = Reply::to(&book, Uuid::now_v7(), ReplyBody::failure("no rooms"));
    assert_eq!(saga.run(&SagaInput::Reply(late)), vec![]);
    assert_eq!(saga.status, SagaStatus::Running);
    // A reply to a command this saga never sent is ignored too.
    let mut stranger = saga.pending_message().unwrap();
    stranger.id = Uuid::now_v7();
    assert_eq!(
        saga.run(&SagaInput::Reply(Reply::to(
            &stranger,
            Uuid::now_v7(),
            ReplyBody::done()
        ))),
        vec![]
    );
}

#[test]
fn a_failing_compensation_is_retried_then_the_saga_fails() {
    let mut saga = started(3);
    answer(
        &mut saga,
        ReplyBody::success(&Booked {
            reference: "H-7".into(),
        }),
    );
    answer(&mut saga, ReplyBody::failure("card declined"));
    let first = saga.pending_message().unwrap();
    answer(&mut saga, ReplyBody::failure("hotel system down"));
    let second = saga.pending_message().unwrap();
    assert_eq!(second.command, first.command, "the same compensation is sent again");
    assert_ne!(second.id, first.id, "as a new message");
    assert_eq!(saga.pending.as_ref().unwrap().attempt, 2);
    let (_, events) = answer(&mut saga, ReplyBody::failure("hotel system down"));
    assert_eq!(saga.status, SagaStatus::Failed);
    let Some(SagaEvent::SagaFailed { reason }) = events.last() else {
        panic!("expected SagaFailed, got {events:?}")
    };
    assert!(
        reason.contains("book hotel") && reason.contains("hotel system down"),
        "{reason}"
    );
    assert_eq!(saga.pending, None);
}

#[test]
fn starting_a_started_saga_does_nothing() {
    let mut saga = started(3);
    let again = SagaInput::Start {
        saga_id: "trip-1".into(),
        data: Trip::default(),
    };
    assert_eq!(saga.run(&again), vec![]);
    assert_eq!(saga.data.as_ref().unwrap().nights, 3);
}

#[test]
fn command_ids_are_derived_so_handle_is_pure() {
    let a = started(3).pending_message().unwrap();
    let b = started(3).pending_message().unwrap();
    assert_eq!(a.id, b.id);
}

/// A hotel that books anything and counts what it did.
#[derive(Clone, Default)]
struct Hotel {
    bookings: Arc<AtomicUsize>,
}

impl Participant for Hotel {
    fn channel(&self) -> &str {
        "hotel"
    }
    async fn handle(&self, command: &CommandMessage) -> Result<Handled, annals::error::BoxError> {
        assert!(command.is::<BookHotel>());
        let n = self.bookings.fetch_add(1, Ordering::SeqCst);
        Ok(Handled::reply(ReplyBody::success(&Booked {
            reference: format!("H-{n}"),
        })))
    }
}

#[tokio::test]
async fn handlers_on_a_store_handle_each_message_once() {
    let store = Arc::new(MemoryStore::new());
    let orchestrator = Orchestrator::<TripSaga, _>::new(Arc::clone(&store));
    let id = StreamId::new("trip-9").unwrap();
    let data = Trip {
        nights: 2,
        ..Trip::default()
    };
    assert!(orchestrator.start(&id, data.clone(), &Metadata::by("t")).await.unwrap());
    assert!(
        !orchestrator.start(&id, data, &Metadata::by("t")).await.unwrap(),
        "a redelivered start finds the saga started"
    );

    // The participant gets the command event twice: one booking, one reply.
    let hotel = Hotel::default();
    let mut participant = ParticipantHandler::new(Arc::clone(&store), hotel.clone());
    let command_event = store
        .read_stream(&id, ReadStream::all())
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "CommandIssued")
        .unwrap();
    participant.handle(&command_event).await.unwrap();
    participant.handle(&command_event).await.unwrap();
    let replies = store
        .read_stream(&reply_stream("trip-9").unwrap(), ReadStream::all())
        .await
        .unwrap();
    assert_eq!(replies.len(), 1, "the duplicate command has no second effect");
    assert_eq!(replies[0].metadata.causation_id, Some(command_event.event_id));

    // The orchestrator gets the reply twice: it moves the saga once.
    let mut handler = orchestrator.clone();
    handler.handle(&replies[0]).await.unwrap();
    let version = orchestrator.load(&id).await.unwrap().version;
    handler.handle(&replies[0]).await.unwrap();
    let saga = orchestrator.load(&id).await.unwrap();
    assert_eq!(saga.version, version);
    assert_eq!(saga.data.as_ref().unwrap().hotel.as_deref(), Some("H-0"));
    assert_eq!(saga.pending_message().unwrap().command.command_type, "Charge");
    assert_eq!(
        hotel.bookings.load(Ordering::SeqCst),
        2,
        "the participant ran twice, stored once"
    );
}
