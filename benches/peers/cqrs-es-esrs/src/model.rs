//! The bench aggregate as each peer spells it: an order revised again and again, with the same
//! state, event payload and decision as annals' bench aggregate.

use annals_bench_harness::Line;
use serde::{Deserialize, Serialize};

/// The state every system folds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OrderState {
    pub revisions: u64,
    pub lines: usize,
    pub total_cents: i64,
}

/// The one event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    OrderRevised { line_items: Vec<Line>, total_cents: i64 },
}

/// A command never fails in this workload.
#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

/// The `n`th event of a command.
pub fn revised(n: usize) -> OrderEvent {
    OrderEvent::OrderRevised {
        line_items: vec![Line::vindaloo()],
        total_cents: 2500 + n as i64,
    }
}

impl OrderState {
    /// Folds one event.
    pub fn apply(
        &mut self,
        OrderEvent::OrderRevised {
            line_items,
            total_cents,
        }: &OrderEvent,
    ) {
        self.revisions += 1;
        self.lines = line_items.len();
        self.total_cents = *total_cents;
    }
}

// ---------- cqrs-es ----------

impl cqrs_es::DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        "OrderRevised".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

impl cqrs_es::Aggregate for OrderState {
    const TYPE: &'static str = "Order";
    type Command = usize;
    type Event = OrderEvent;
    type Error = Never;
    type Services = ();

    async fn handle(
        &mut self,
        events: usize,
        _: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Never> {
        for n in 0..events {
            sink.write(revised(n), self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: OrderEvent) {
        OrderState::apply(self, &event);
    }
}

// ---------- esrs ----------

/// esrs keeps the aggregate (behaviour) apart from its state.
pub struct EsrsOrder;

impl esrs::Aggregate for EsrsOrder {
    const NAME: &'static str = "esrs_order";
    type State = OrderState;
    type Command = usize;
    type Event = OrderEvent;
    type Error = Never;

    fn handle_command(_: &OrderState, events: usize) -> Result<Vec<OrderEvent>, Never> {
        Ok((0..events).map(revised).collect())
    }

    fn apply_event(mut state: OrderState, event: OrderEvent) -> OrderState {
        state.apply(&event);
        state
    }
}
