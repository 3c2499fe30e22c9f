//! Order service: orders and the saga that drives them (the orchestrator).
//!
//! Owns `orders`, `order_items` and `order_timeline`. Each step of the saga
//! is one local transaction: read the order, ask [`domain::decide`] what
//! comes next, write the new status and a timeline entry, and put the
//! events to emit in the outbox.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod metrics;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_catalog::{CatalogClient, PricingError};
use agora_inventory::{StockCheck, StockGate};
use agora_platform::auth::Account;
use agora_platform::clock::now_rfc3339;
use agora_platform::db::{DbError, Migration};
use agora_platform::events::{
    CartCheckedOut, CheckoutRejected, Envelope, LineItem, Money, OrderCancelled, OrderCompleted,
    OrderCreated, PaymentRequested, PricedItem, ShippingRequested,
};
use agora_platform::secrets;
use agora_platform::service::{Context, Parts, Service};
use agora_platform::validate::FieldError;
use agora_platform::{Db, Tx};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use domain::{
    decide, Awaiting, Decision, Emit, Input, Order, OrderStatus, PlaceOrder, TimelineEntry,
};

pub use store::MIGRATIONS;

pub const NAME: &str = "order";

/// The PostgreSQL notice channel on which an instance announces the orders
/// it moved to a terminal state (payload: `"{id} {STATUS}"`).
pub const TERMINAL_NOTICES: &str = "agora_order_terminal";

#[derive(Clone)]
pub struct Orders {
    pub db: Db,
    pub catalog: Arc<dyn CatalogClient>,
    /// The fast stock check before accepting an order (none: the saga alone decides).
    pub stock: Option<StockGate>,
    /// How long each step of the saga may take before the order is
    /// cancelled and compensated.
    pub step_timeout: Duration,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// How often a waiter re-reads an order it was told nothing about: a
    /// notice from the instance that moved it normally comes first.
    pub recheck_every: Duration,
    /// Clients that may wait at once ([`Orders::wait_terminal`]); past it,
    /// a client is answered at once with the order as it is.
    pub max_waiters: usize,
    watchers: Arc<Watchers>,
}

/// How many clients may wait for orders at once, by default.
pub const DEFAULT_MAX_WAITERS: usize = 1000;

/// What moved an order: an event it consumed, a caller of the API (a
/// customer cancelling, an operator acting: recorded on the timeline as
/// who did it), or the order service itself (a deadline).
#[derive(Debug, Clone, Copy)]
pub enum Cause<'a> {
    Event(&'a Envelope),
    Caller(&'a Account),
    Internal,
}

impl<'a> Cause<'a> {
    fn event(self) -> Option<&'a Envelope> {
        match self {
            Cause::Event(e) => Some(e),
            _ => None,
        }
    }
}

/// What one saga step did.
#[derive(Debug, PartialEq)]
pub enum Step {
    Moved(OrderStatus),
    Noted,
    Ignored,
    Refused(String),
    UnknownOrder,
    /// Another instance changed the order between read and write; try again.
    Conflict,
}

impl Orders {
    pub fn new(db: Db, catalog: Arc<dyn CatalogClient>) -> Self {
        Orders {
            db,
            catalog,
            stock: None,
            step_timeout: Duration::from_secs(30),
            idempotency_ttl: agora_platform::idempotency::DEFAULT_TTL,
            recheck_every: Duration::from_secs(1),
            max_waiters: DEFAULT_MAX_WAITERS,
            watchers: Arc::new(Watchers::default()),
        }
    }

    /// Builds a `PENDING` order whose prices come from the catalog.
    pub async fn priced(&self, id: Uuid, cmd: PlaceOrder) -> Result<Order, PricingError> {
        let priced = agora_catalog::price(self.catalog.as_ref(), &cmd.items).await?;
        let now = now_rfc3339();
        Ok(Order {
            id,
            customer_id: cmd.customer_id,
            email: cmd.email,
            phone: cmd.phone,
            status: OrderStatus::Pending,
            reason: None,
            awaiting: Awaiting::NONE,
            items: priced.items,
            total: priced.total,
            shipping_address: cmd.shipping_address,
            payment_token: cmd.payment_token,
            created_at: now.clone(),
            updated_at: now,
        })
    }

    /// Records a checked-out cart that cannot become an order (a product
    /// that vanished, a currency that changed since the cart checked it)
    /// as a `REJECTED` order with the reason, so that the order id the
    /// checkout returned answers, and emits `CheckoutRejected` so that the
    /// cart gets its lines back. Nothing was reserved or charged: nobody
    /// else hears of it.
    pub async fn reject_checkout_in(
        &self,
        tx: &mut Tx,
        checkout: &CartCheckedOut,
        refused: &[FieldError],
        cause: &Envelope,
    ) -> Result<(), DbError> {
        let reason = format!(
            "the checkout could not become an order: {}",
            refused
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let now = now_rfc3339();
        let order = Order {
            id: checkout.order_id,
            customer_id: checkout.customer_id.clone(),
            email: checkout.email.clone(),
            phone: checkout.phone.clone(),
            status: OrderStatus::Rejected,
            reason: Some(reason.clone()),
            awaiting: Awaiting::NONE,
            // The lines went back to the cart; nothing was priced.
            items: Vec::new(),
            total: Money {
                amount: 0,
                currency: "XXX".into(),
            },
            shipping_address: checkout.shipping_address.clone(),
            payment_token: secrets::mask(&checkout.payment_token),
            created_at: now.clone(),
            updated_at: now,
        };
        let inserted = store::insert(
            tx,
            &order,
            &cause.correlationid,
            &cause.event_type,
            Some(cause.id),
            None,
        )
        .await?;
        if inserted.is_none() {
            return Ok(());
        }
        let rejected = CheckoutRejected {
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            items: checkout.items.clone(),
            reason,
        };
        tx.publish(&Envelope::caused_by(&rejected, cause)).await?;
        tracing::warn!(order_id = %order.id, "order REJECTED (the checked-out cart cannot become an order)");
        Ok(())
    }

    /// Inserts `order` and emits `OrderCreated`, unless it exists already.
    /// Returns the order's first timeline entry if it was created.
    pub async fn create_in(
        &self,
        tx: &mut Tx,
        order: &Order,
        cause: Option<&Envelope>,
    ) -> Result<Option<TimelineEntry>, DbError> {
        let created = OrderCreated {
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            email: order.email.clone(),
            phone: order.phone.clone(),
            items: order.items.clone(),
            total: order.total.clone(),
            shipping_address: order.shipping_address.clone(),
        };
        let envelope = match cause {
            Some(cause) => Envelope::caused_by(&created, cause),
            None => Envelope::root(&created),
        };
        let cause_name = cause.map_or("POST /orders", |c| c.event_type.as_str());
        let Some(entry) = store::insert(
            tx,
            order,
            &envelope.correlationid,
            cause_name,
            cause.map(|c| c.id),
            Some(self.deadline()),
        )
        .await?
        else {
            return Ok(None);
        };
        tx.publish(&envelope).await?;
        tracing::info!(order_id = %order.id, total = order.total.amount, "order PENDING (created)");
        Ok(Some(entry))
    }

    /// Refuses (409, naming the lines) an order that asks for more than is
    /// available now. Skipped while the breaker is open or when inventory
    /// does not answer in time: the saga still decides, so orders keep
    /// being accepted.
    pub async fn precheck(&self, items: &[PricedItem]) -> Result<(), agora_inventory::Shortage> {
        let Some(stock) = &self.stock else {
            return Ok(());
        };
        let lines: Vec<LineItem> = items
            .iter()
            .map(|i| LineItem {
                product_id: i.product_id,
                quantity: i.quantity,
            })
            .collect();
        stock.admit(&lines).await
    }

    fn deadline(&self) -> i64 {
        agora_platform::clock::now_millis() + self.step_timeout.as_millis() as i64
    }

    /// Cancels (and so compensates) orders whose current step is overdue.
    pub async fn expire_overdue(&self) -> Result<usize, DbError> {
        let overdue = store::overdue(&self.db, agora_platform::clock::now_millis(), 100).await?;
        let mut expired = 0;
        for id in overdue {
            let mut tx = self.db.begin().await?;
            if let Step::Moved(_) = self
                .advance(&mut tx, id, Input::TimedOut, Cause::Internal)
                .await?
            {
                tx.commit().await?;
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// An operator's action on an order whose compensation is pending:
    /// retry it (emit `OrderCancelled` again) or force-cancel.
    pub async fn operate(
        &self,
        id: Uuid,
        input: Input,
        operator: &Account,
    ) -> Result<Order, OrderError> {
        let mut tx = self.db.begin().await?;
        let step = self
            .advance(&mut tx, id, input, Cause::Caller(operator))
            .await?;
        refusal(id, step)?;
        tx.commit().await?;
        tracing::warn!(order_id = %id, operator = %operator.id, "operator action applied");
        store::find(&self.db, id)
            .await?
            .ok_or(OrderError::Vanished(id))
    }

    /// A customer's cancellation inside `tx`: 404 if unknown, 409 once
    /// shipped or ended (or while another instance is moving the order).
    pub async fn cancel_in(
        &self,
        tx: &mut Tx,
        id: Uuid,
        reason: String,
        caller: &Account,
    ) -> Result<Order, OrderError> {
        let step = self
            .advance(
                tx,
                id,
                Input::CancelRequested { reason },
                Cause::Caller(caller),
            )
            .await?;
        refusal(id, step)?;
        store::find_loaded(&mut *tx, id)
            .await?
            .map(|loaded| loaded.order)
            .ok_or(OrderError::Vanished(id))
    }

    /// Applies one saga input to order `id` inside `tx`: the new status, a
    /// timeline entry, and the events to emit, or nothing for a late event.
    /// On [`Step::Conflict`] the caller must drop `tx`: the entry and events
    /// are queued in it, but the order was not written.
    pub async fn advance(
        &self,
        tx: &mut Tx,
        id: Uuid,
        input: Input,
        cause: Cause<'_>,
    ) -> Result<Step, DbError> {
        let Some(mut found) = store::find_loaded(&mut *tx, id).await? else {
            return Ok(Step::UnknownOrder);
        };
        let step = self.advance_loaded(tx, &mut found, input, cause).await?;
        if !store::save(tx, [&mut found]).await?.is_empty() {
            return Ok(Step::Conflict);
        }
        Ok(step)
    }

    /// [`Orders::advance`] for an order read already in `tx`, changed in
    /// `found` only (so that the next input for the same order in the same
    /// transaction sees what this one did) until [`store::save`] writes it.
    pub async fn advance_loaded(
        &self,
        tx: &mut Tx,
        found: &mut store::Loaded,
        input: Input,
        cause: Cause<'_>,
    ) -> Result<Step, DbError> {
        let order = &mut found.order;
        let id = order.id;
        let cause_name = match (&input, cause) {
            (_, Cause::Event(c)) => c.event_type.clone(),
            (Input::TimedOut, _) => "deadline".to_owned(),
            (Input::RetryCompensation, _) => "operator: retry compensation".to_owned(),
            (Input::ForceCancel, _) => "operator: force cancel".to_owned(),
            _ => "POST /orders/{id}/cancel".to_owned(),
        };
        let actor = match cause {
            Cause::Caller(account) => Some(format!("{} {}", account.role.as_str(), account.id)),
            _ => None,
        };
        let event_id = cause.event().map(|c| c.id);
        let cause = cause.event();
        let at = now_rfc3339();
        match decide(order.status, order.awaiting, &input) {
            Decision::Transition {
                to,
                reason,
                emit,
                awaiting,
                note,
            } => {
                // An order waiting for an operator has no deadline.
                let deadline = (!to.is_terminal() && to != OrderStatus::RequiresAttention)
                    .then(|| self.deadline());
                let reason_now = reason.clone().or_else(|| order.reason.clone());
                let entry = TimelineEntry {
                    at: at.clone(),
                    from: Some(order.status),
                    to,
                    cause: cause_name.clone(),
                    event_id,
                    actor,
                    note: note.or(reason),
                };
                store::add_timeline(tx, id, &entry);
                for emit in emit {
                    let envelope = emitted(order, &emit, cause, &found.correlation_id);
                    tx.publish(&envelope).await?;
                }
                // The payment token serves once, for `PaymentRequested` as
                // the order leaves PENDING; the order keeps only a mask.
                if to != OrderStatus::Pending && !secrets::is_masked(&order.payment_token) {
                    order.payment_token = secrets::mask(&order.payment_token);
                }
                // The event and trace it moved on, also when it is one of
                // a batch (whose span is not the event's).
                let trace_id = cause.and_then(|c| c.trace_id());
                tracing::info!(order_id = %id, from = order.status.as_str(), to = to.as_str(), cause = %cause_name, event_id = event_id.map(tracing::field::display), trace_id, "order {} -> {}", order.status.as_str(), to.as_str());
                (order.status, order.awaiting, order.reason, order.updated_at) =
                    (to, awaiting, reason_now, at);
                found.deadline_at = deadline;
                found.changed = true;
                let watchers = self.watchers.clone();
                tx.after_commit(move || watchers.changed(id, to));
                // A client waiting here is told by the hook above; one
                // waiting on another instance needs a notice. (Two clients
                // waiting on two instances for one order: the other one
                // learns it at its next re-read.)
                if to.is_terminal() && !self.watchers.is_watched(id) {
                    tx.notify_at_commit(TERMINAL_NOTICES, format!("{id} {}", to.as_str()));
                }
                Ok(Step::Moved(to))
            }
            Decision::Note { note, awaiting } => {
                if awaiting != order.awaiting {
                    order.awaiting = awaiting;
                    found.changed = true;
                }
                let entry = TimelineEntry {
                    at,
                    from: Some(order.status),
                    to: order.status,
                    cause: cause_name,
                    event_id,
                    actor,
                    note: Some(note),
                };
                store::add_timeline(tx, id, &entry);
                Ok(Step::Noted)
            }
            Decision::Ignore => {
                tracing::debug!(order_id = %id, status = order.status.as_str(), cause = %cause_name, "late or duplicate event ignored");
                Ok(Step::Ignored)
            }
            Decision::Refuse(why) => Ok(Step::Refused(why)),
        }
    }

    /// Hears the terminal states that other instances commit (PostgreSQL),
    /// until `shutdown`: a waiter here then learns them at once, not at its
    /// next re-read. Returns at once on SQLite (one process).
    pub async fn follow_other_instances(&self, shutdown: CancellationToken) {
        let watchers = self.watchers.clone();
        let on_notice = move |payload: &str| {
            let notice = payload.split_once(' ').and_then(|(id, status)| {
                Some((id.parse::<Uuid>().ok()?, OrderStatus::parse(status)?))
            });
            match notice {
                Some((id, status)) => watchers.changed(id, status),
                None => tracing::warn!(payload, "ignored a malformed order notice"),
            }
        };
        self.db.listen(TERMINAL_NOTICES, on_notice, shutdown).await;
    }

    /// The order's status now, after waiting up to `wait` for it to reach
    /// a terminal state (no wait when zero). At most `max_waiters` clients
    /// wait at once; past it, the status is read and returned at once. A
    /// waiter holds no storage connection while it waits, and one whose
    /// client goes away (its future dropped) leaves at once: the guard,
    /// not the end of this function, counts it out.
    pub async fn wait_terminal(
        &self,
        id: Uuid,
        wait: Duration,
    ) -> Result<Option<OrderStatus>, DbError> {
        if wait.is_zero() {
            return store::status_of(&self.db, id).await;
        }
        let Some(mut waiting) = Waiting::admit(&self.watchers, id, self.max_waiters) else {
            return store::status_of(&self.db, id).await;
        };
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribed before reading, so a change between the read and the
        // wait still wakes us; a change made here announces its status, so
        // only the first read goes to the database.
        let mut status = store::status_of(&self.db, id).await?;
        loop {
            match status {
                Some(s) if !s.is_terminal() && tokio::time::Instant::now() < deadline => {}
                other => return Ok(other),
            }
            // A terminal state reached on another instance arrives as a
            // notice (`follow_other_instances`); the re-read now and then
            // covers a notice missed while the listener reconnected (each
            // re-read is a statement per waiting client, so not too often).
            let nap = (deadline - tokio::time::Instant::now()).min(self.recheck_every);
            let announced = waiting.announced();
            status = match tokio::time::timeout(nap, announced.changed()).await {
                Ok(Ok(())) => announced.borrow_and_update().or(status),
                _ => store::status_of(&self.db, id).await?,
            };
        }
    }

    /// Clients waiting for orders to end right now.
    pub fn waiting(&self) -> usize {
        self.watchers
            .waiting
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One client waiting on one order: admitted under the cap, and counted
/// out (its subscription dropped) whenever it is dropped, at the end of
/// the wait or when its client disconnects.
struct Waiting {
    watchers: Arc<Watchers>,
    id: Uuid,
    announced: Option<watch::Receiver<Option<OrderStatus>>>,
}

impl Waiting {
    fn admit(watchers: &Arc<Watchers>, id: Uuid, max: usize) -> Option<Waiting> {
        use std::sync::atomic::Ordering;
        if watchers.waiting.fetch_add(1, Ordering::AcqRel) >= max {
            watchers.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Waiting {
            watchers: watchers.clone(),
            id,
            announced: Some(watchers.watch(id)),
        })
    }

    fn announced(&mut self) -> &mut watch::Receiver<Option<OrderStatus>> {
        self.announced.as_mut().expect("held until dropped")
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(announced) = self.announced.take() {
            self.watchers.unwatch(self.id, announced);
        }
        self.watchers
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The event that `emit` stands for, built from the order.
fn emitted(order: &Order, emit: &Emit, cause: Option<&Envelope>, correlation_id: &str) -> Envelope {
    fn envelope<E: agora_platform::events::DomainEvent>(
        event: &E,
        cause: Option<&Envelope>,
        correlation_id: &str,
    ) -> Envelope {
        match cause {
            Some(cause) => Envelope::caused_by(event, cause),
            None => {
                let mut env = Envelope::root(event);
                env.correlationid = correlation_id.to_owned();
                env
            }
        }
    }
    let order_id = order.id;
    match emit {
        Emit::PaymentRequested => envelope(
            &PaymentRequested {
                order_id,
                customer_id: order.customer_id.clone(),
                amount: order.total.clone(),
                payment_token: order.payment_token.clone(),
            },
            cause,
            correlation_id,
        ),
        Emit::ShippingRequested => envelope(
            &ShippingRequested {
                order_id,
                customer_id: Some(order.customer_id.clone()),
                shipping_address: order.shipping_address.clone(),
                items: order
                    .items
                    .iter()
                    .map(|i| LineItem {
                        product_id: i.product_id,
                        quantity: i.quantity,
                    })
                    .collect(),
            },
            cause,
            correlation_id,
        ),
        Emit::OrderCompleted => envelope(&OrderCompleted { order_id }, cause, correlation_id),
        Emit::OrderCancelled { reason, code } => envelope(
            &OrderCancelled {
                order_id,
                reason: reason.clone(),
                code: *code,
            },
            cause,
            correlation_id,
        ),
    }
}

/// In-process watchers of orders, told each committed status change.
#[derive(Default)]
struct Watchers {
    by_order: Mutex<HashMap<Uuid, watch::Sender<Option<OrderStatus>>>>,
    /// Clients waiting now (see [`Waiting`]).
    waiting: std::sync::atomic::AtomicUsize,
}

impl Watchers {
    fn watch(&self, id: Uuid) -> watch::Receiver<Option<OrderStatus>> {
        let mut map = self.by_order.lock().expect("watchers lock");
        map.entry(id)
            .or_insert_with(|| watch::Sender::new(None))
            .subscribe()
    }

    fn unwatch(&self, id: Uuid, watcher: watch::Receiver<Option<OrderStatus>>) {
        let mut map = self.by_order.lock().expect("watchers lock");
        drop(watcher);
        if map.get(&id).is_some_and(|s| s.receiver_count() == 0) {
            map.remove(&id);
        }
    }

    fn is_watched(&self, id: Uuid) -> bool {
        self.by_order
            .lock()
            .expect("watchers lock")
            .contains_key(&id)
    }

    fn changed(&self, id: Uuid, status: OrderStatus) {
        if let Some(sender) = self.by_order.lock().expect("watchers lock").get(&id) {
            sender.send_replace(Some(status));
        }
    }
}

/// The saga's deadline sweep, run periodically by the composition.
pub struct DeadlineSweep(pub Orders);

#[async_trait::async_trait]
impl agora_platform::periodic::Periodic for DeadlineSweep {
    fn name(&self) -> &'static str {
        "order-deadlines"
    }

    fn every(&self) -> Duration {
        (self.0.step_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    async fn run_once(&self) -> anyhow::Result<usize> {
        Ok(self.0.expire_overdue().await?)
    }
}

/// Why a customer's or operator's action on an order was not applied.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("order {0} does not exist")]
    NotFound(Uuid),
    /// The saga refuses the action in the order's state.
    #[error("{0}")]
    Refused(String),
    /// Another instance is moving the order: try again.
    #[error("the order is changing; try again")]
    Busy,
    #[error("order {0} vanished after it moved")]
    Vanished(Uuid),
    #[error(transparent)]
    Storage(#[from] DbError),
}

/// An action's step as a refusal, unless it moved the order.
fn refusal(id: Uuid, step: Step) -> Result<(), OrderError> {
    match step {
        Step::Moved(_) => Ok(()),
        Step::Refused(why) => Err(OrderError::Refused(why)),
        Step::UnknownOrder => Err(OrderError::NotFound(id)),
        Step::Conflict | Step::Noted | Step::Ignored => Err(OrderError::Busy),
    }
}

/// The order service: orders and the saga that drives each one to an end.
pub struct OrderService;

#[async_trait::async_trait]
impl Service for OrderService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/api/v1/orders"]
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <api::ApiDoc as utoipa::OpenApi>::openapi()
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    fn consumes(&self) -> &'static [&'static str] {
        handlers::ROUTING_KEYS
    }

    fn needs(&self) -> &'static [&'static str] {
        &[agora_catalog::NAME, agora_inventory::NAME]
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        let settings = &context.settings;
        let catalog: Arc<dyn CatalogClient> = context.peer()?;
        let mut orders = Orders::new(context.db.clone(), catalog.clone());
        orders.step_timeout = settings.step_timeout;
        orders.idempotency_ttl = settings.idempotency_ttl;
        orders.max_waiters = settings.max_waiters;
        if settings.stock_check {
            let check = context.peer::<Arc<dyn StockCheck>>()?;
            orders.stock = Some(StockGate::new(check, "inventory-stock-check"));
        }
        let (follower, masking) = (orders.clone(), context.db.clone());
        agora_platform::metrics::install();
        metrics::describe();
        Ok(Parts::new(api::router(orders.clone()))
            .with_gauges(metrics::OrderGauges(context.db.clone()))
            .with_breakers(orders.stock.iter().map(|s| s.breaker.clone()))
            .with_breakers(catalog.breaker())
            .with_periodic(DeadlineSweep(orders.clone()))
            .with_background(move |shutdown| async move {
                follower.follow_other_instances(shutdown).await
            })
            // Tokens an earlier release kept in clear are masked once, at start.
            .with_background(move |_| async move {
                if let Err(e) = store::mask_spent_tokens(&masking).await {
                    tracing::warn!(error = %e, "could not mask the payment tokens an earlier release kept");
                }
            })
            .with_handler(handlers::Handler { orders }))
    }
}
