//! The Kitchen Service as a saga participant: `CreateTicket` takes the ticket to be new (no
//! read); when it is not, storing conflicts and the command is decided again on the stored
//! ticket, which refuses — a failure reply, stored once.

use std::sync::Arc;

use annals::saga::{CommandMessage, ParticipantHandler, Reply, SagaCommand, reply_stream};
use annals::{EventStore, MemoryStore, Metadata, ReadStream, StreamId};
use ftgo::create_order::{CreateTicket, KITCHEN};
use ftgo::order::LineItem;
use ftgo::services::KitchenService;

fn create_ticket(saga: &str) -> CommandMessage {
    let command = CreateTicket {
        order_id: "order-1".into(),
        restaurant_id: "ajanta".into(),
        line_items: vec![LineItem::new("m-7", "Chicken Vindaloo", 1, 1_250)],
    };
    CommandMessage {
        id: uuid::Uuid::now_v7(),
        saga_type: "CreateOrder".into(),
        saga_id: StreamId::new(saga).unwrap(),
        command: SagaCommand::of(KITCHEN, &command),
        compensation: false,
        metadata: Metadata::by("test"),
    }
}

async fn reply_of<St: EventStore>(store: &St, saga: &str) -> Reply {
    let events = store
        .read_stream(&reply_stream(saga).unwrap(), ReadStream::all())
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "one reply");
    Reply::from_event(&events[0]).unwrap().unwrap()
}

#[tokio::test]
async fn a_ticket_that_exists_is_refused_after_the_conflict() {
    let store = Arc::new(MemoryStore::new());
    let kitchen = ParticipantHandler::new(Arc::clone(&store), KitchenService::new(Arc::clone(&store)));
    assert!(kitchen.handle_command(&create_ticket("saga-a")).await.unwrap());
    assert!(reply_of(&store, "saga-a").await.is_success());
    // Another command for the same order's ticket (another saga): created as new, it conflicts;
    // decided again on the stored ticket, it is refused.
    assert!(kitchen.handle_command(&create_ticket("saga-b")).await.unwrap());
    let reply = reply_of(&store, "saga-b").await;
    assert!(!reply.is_success());
    assert!(reply.reason().unwrap().contains("exists"), "{:?}", reply.reason());
    let ticket = ftgo::create_order::ticket_id("order-1").unwrap();
    assert_eq!(store.stream_version(&ticket).await.unwrap(), 1, "one TicketCreated");
}
