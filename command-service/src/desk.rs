//! A show's box office in this replica: one task per show that keeps the show's state, decides
//! the holds that arrive together as one group and writes them as one event (group commit).
//!
//! Why a task per show: a hot show gets thousands of holds a second. Deciding each on its own
//! and appending it guarded by the stock's last sequence would make every hold but one per round
//! trip lose the race and load again. Here the task owns the state, so nothing is loaded or
//! copied per hold; while one group's append is in flight the next group gathers; and a group is
//! one append, so a show sells at one round trip per group, not per buyer.
//!
//! The state is kept current by reading only what is new (`read(show, position + 1)`), never the
//! whole history again:
//! - after a lost race (another replica wrote the stock, or the order's subject);
//! - before any refusal or "already done" is answered, so that every such answer comes from a
//!   state read after the request arrived (a cancellation elsewhere may have freed the seats);
//! - otherwise never: a placement decided without a cancellation it has not seen yet only counts
//!   those items as still held, which can refuse (and is then read again), never oversell.
//!
//! Its own writes are applied at once and remembered by sequence, so the next read skips them.
//! Orders' own events (cancel, expire) are appended on the order's subject by a task of their
//! own, so they never wait for the stock's writes nor for each other.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{
    Aggregate, Event, Held, HoldRequest, OrderId, Payment, PaymentCommand, PaymentId, Show, ShowCommand, ShowError,
    ShowId, ShowOrder, subjects,
};
use event_store::{Append, AppendError, EventStore, Guard, StoreError};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{CommandError, now};

/// The most holds decided and written as one event.
const MAX_GROUP: usize = domain::show::MAX_ORDERS_PER_PLACEMENT;

/// How many times a decision is made again after losing a race.
const MAX_ATTEMPTS: u32 = 24;

/// How long a desk with nothing to do stays: its state is dropped after that.
const IDLE: Duration = Duration::from_secs(60);

/// An order of a show with its payment attempts, as one answer saw them.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderView {
    /// The order (`None`: the show has no such order).
    pub order: Option<ShowOrder>,
    /// Its payment attempts.
    pub payments: Vec<Payment>,
    /// Whether this answer wrote an event.
    pub wrote: bool,
}

impl OrderView {
    /// One of its payment attempts.
    pub(crate) fn payment(&self, id: PaymentId) -> Option<&Payment> {
        self.payments.iter().find(|p| p.id == id)
    }
}

/// A show's state as one answer saw it, with the stream position a reader must reach to see it.
#[derive(Debug, Clone)]
pub(crate) struct Seen<T> {
    /// What was decided or found.
    pub value: T,
    /// The position of the write (or, for "already done", of the state it was read from).
    pub position: u64,
}

type Reply<T> = oneshot::Sender<Result<Seen<T>, CommandError>>;

/// Work for a desk.
enum Job {
    /// Hold tickets and seats: decided with the others that arrive together.
    Hold { request: HoldRequest, arrived: Instant, reply: Reply<ShowOrder> },
    /// Would this hold be placed now? Decided without writing (refusals on a fresh state only).
    Check { request: HoldRequest, arrived: Instant, reply: Reply<Held> },
    /// A write to the stock other than holds (an update of title, venue or time).
    Stock { command: ShowCommand, arrived: Instant, reply: Reply<()> },
    /// A command on one order (cancel, expire), written on the order's subject.
    Order { command: ShowCommand, arrived: Instant, attempt: u32, reply: Reply<OrderView> },
    /// The order as a state read after this job arrived has it.
    Find { order_id: OrderId, arrived: Instant, reply: Reply<OrderView> },
    /// An order's append was stored: apply it.
    Written { sequence: u64, subject: String, event: Event },
    /// An order's append lost a race: read what is new before deciding again.
    Stale,
}

/// The desks of this replica, one per show in use.
#[derive(Clone)]
pub(crate) struct Desks {
    store: EventStore,
    open: Arc<Mutex<HashMap<ShowId, mpsc::UnboundedSender<Job>>>>,
}

impl Desks {
    pub(crate) fn new(store: EventStore) -> Self {
        Self { store, open: Arc::default() }
    }

    /// Hands a job to the show's desk, opening one if there is none. Sent while the map is
    /// locked, so a desk that closes (which it does under the same lock, once its queue is empty)
    /// never leaves a job unread.
    fn send(&self, show: ShowId, job: Job) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let job = match open.get(&show) {
            Some(desk) => match desk.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let desk = Desk::new(show, self.store.clone(), tx.clone());
        let _ = tx.send(job);
        open.insert(show, tx);
        tokio::spawn(desk.run(rx, self.open.clone()));
    }

    async fn ask<T>(&self, show: ShowId, job: impl FnOnce(Reply<T>) -> Job) -> Result<Seen<T>, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.send(show, job(reply));
        answer.await.map_err(|_| CommandError::Internal("the show's desk stopped".into()))?
    }

    /// Places a hold, decided together with the holds that arrive with it.
    pub(crate) async fn hold(&self, show: ShowId, request: HoldRequest) -> Result<Seen<ShowOrder>, CommandError> {
        self.ask(show, |reply| Job::Hold { request, arrived: Instant::now(), reply }).await
    }

    /// Whether a hold would be placed now, without writing anything.
    pub(crate) async fn check(&self, show: ShowId, request: HoldRequest) -> Result<Seen<Held>, CommandError> {
        self.ask(show, |reply| Job::Check { request, arrived: Instant::now(), reply }).await
    }

    /// Writes a stock command other than a hold; answers the position that reflects it.
    pub(crate) async fn stock(&self, show: ShowId, command: ShowCommand) -> Result<Seen<()>, CommandError> {
        self.ask(show, |reply| Job::Stock { command, arrived: Instant::now(), reply }).await
    }

    /// The order, as a state read after this call has it (`None`: not placed).
    pub(crate) async fn find(&self, show: ShowId, order_id: OrderId) -> Result<Seen<OrderView>, CommandError> {
        self.ask(show, |reply| Job::Find { order_id, arrived: Instant::now(), reply }).await
    }

    /// Decides a command on one order (cancel, expire, a payment's start or settlement) and
    /// writes it on the order's subject; answers the order and its payments after it.
    pub(crate) async fn order(&self, show: ShowId, command: ShowCommand) -> Result<Seen<OrderView>, CommandError> {
        self.ask(show, |reply| Job::Order { command, arrived: Instant::now(), attempt: 0, reply }).await
    }
}

/// One show's state in this replica, and where it stands in the stream.
struct Desk {
    id: ShowId,
    store: EventStore,
    /// Its own queue, for the order appends it starts to report back on.
    inbox: mpsc::UnboundedSender<Job>,
    show: Show,
    /// Every message of the show up to here is applied (and some after it: `beyond`).
    position: u64,
    /// Writes of this desk applied beyond `position`, skipped when the stream is read again.
    beyond: BTreeSet<u64>,
    /// The last sequence on the stock subject: the guard of the next stock append.
    stock_last: u64,
    /// The last sequence on each order's subject: the guard of its next append.
    order_last: HashMap<OrderId, u64>,
    /// Something was written elsewhere since the state was read: read again before deciding.
    stale: bool,
    /// When the last read began: answers to jobs that arrived before it are fresh.
    read_at: Option<Instant>,
}

impl Desk {
    fn new(id: ShowId, store: EventStore, inbox: mpsc::UnboundedSender<Job>) -> Self {
        Self {
            id,
            store,
            inbox,
            show: Show::default(),
            position: 0,
            beyond: BTreeSet::new(),
            stock_last: 0,
            order_last: HashMap::new(),
            stale: true,
            read_at: None,
        }
    }

    async fn run(
        mut self,
        mut jobs: mpsc::UnboundedReceiver<Job>,
        open: Arc<Mutex<HashMap<ShowId, mpsc::UnboundedSender<Job>>>>,
    ) {
        loop {
            let first = match tokio::time::timeout(IDLE, jobs.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_) => {
                    // Idle: close, unless a job came in meanwhile (senders hold the same lock).
                    let mut open = open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match jobs.try_recv() {
                        Ok(job) => job,
                        Err(_) => {
                            open.remove(&self.id);
                            return;
                        }
                    }
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP * 4 {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.work(batch).await;
            if self.show.info.is_none() && !self.stale {
                // No such show: keep no desk for it (anyone may ask about any id).
                let mut open = open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if jobs.is_empty() {
                    open.remove(&self.id);
                    return;
                }
            }
        }
    }

    async fn work(&mut self, batch: Vec<Job>) {
        let mut holds = Vec::new();
        let mut checks = Vec::new();
        let mut others = Vec::new();
        for job in batch {
            match job {
                Job::Written { sequence, subject, event } => self.apply_own(sequence, &subject, &event),
                Job::Stale => self.stale = true,
                Job::Hold { request, arrived, reply } => holds.push((request, arrived, reply)),
                Job::Check { request, arrived, reply } => checks.push((request, arrived, reply)),
                other => others.push(other),
            }
        }
        if self.stale
            && let Err(error) = self.catch_up().await
        {
            let error = CommandError::Store(error);
            let failure = || copy_error(&error);
            for (_, _, reply) in holds {
                let _ = reply.send(Err(failure()));
            }
            for (_, _, reply) in checks {
                let _ = reply.send(Err(failure()));
            }
            for job in others {
                fail(job, failure());
            }
            return;
        }
        for check in checks {
            self.check(check).await;
        }
        while !holds.is_empty() {
            let rest = holds.split_off(holds.len().min(MAX_GROUP));
            self.place(std::mem::replace(&mut holds, rest)).await;
        }
        for job in others {
            match job {
                Job::Stock { command, arrived, reply } => {
                    let answer = self.write_stock(command, arrived).await;
                    let _ = reply.send(answer);
                }
                Job::Order { command, arrived, attempt, reply } => {
                    self.order(command, arrived, attempt, reply).await;
                }
                Job::Find { order_id, arrived, reply } => {
                    let answer = match self.fresh_for(arrived) {
                        true => Ok(()),
                        false => self.catch_up().await,
                    };
                    let answer = answer
                        .map(|()| Seen { value: self.view(Some(order_id)), position: self.known() })
                        .map_err(CommandError::from);
                    let _ = reply.send(answer);
                }
                _ => {}
            }
        }
    }

    /// Whether an answer decided now is from a state read after `arrived`.
    fn fresh_for(&self, arrived: Instant) -> bool {
        self.read_at.is_some_and(|read| read >= arrived) && !self.stale
    }

    /// Reads everything new of the show and applies it (the whole history the first time).
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        let boundary = subjects::show(self.id);
        // Up to the last message the stream's leader knows of, asked after this read began: a
        // replica that is behind cannot make a stale state look fresh. One ordered read of the
        // whole boundary (never one request per order subject), the whole history the first time.
        let events = self.store.read_complete(&boundary, self.position + 1).await?;
        let stock = subjects::show_stock(self.id);
        for stored in events {
            if stored.sequence <= self.position {
                continue;
            }
            if !self.beyond.remove(&stored.sequence) {
                self.show = std::mem::take(&mut self.show).evolve(&stored.event);
            }
            self.track(stored.sequence, &stored.subject, &stock);
            self.position = stored.sequence;
        }
        let position = self.position;
        self.beyond.retain(|s| *s > position);
        self.stale = false;
        self.read_at = Some(started);
        Ok(())
    }

    fn track(&mut self, sequence: u64, subject: &str, stock: &str) {
        if subject == stock {
            self.stock_last = self.stock_last.max(sequence);
        } else if let Some(order_id) = subjects::show_order_of(subject) {
            let last = self.order_last.entry(order_id).or_default();
            *last = (*last).max(sequence);
        }
    }

    /// An order and its payments as the state has them.
    fn view(&self, order_id: Option<OrderId>) -> OrderView {
        let Some(order_id) = order_id else { return OrderView::default() };
        OrderView {
            order: self.show.orders.get(&order_id).cloned(),
            payments: (self.show.order_payments.get(&order_id).into_iter().flatten())
                .filter_map(|id| self.show.payments.get(id).cloned())
                .collect(),
            wrote: false,
        }
    }

    /// The order a command is about: named by it, or (a settlement) its payment's.
    fn order_of(&self, command: &ShowCommand) -> Option<OrderId> {
        match command {
            ShowCommand::Cancel { order_id, .. }
            | ShowCommand::Expire { order_id, .. }
            | ShowCommand::Payment(PaymentCommand::Start { order_id, .. }) => Some(*order_id),
            ShowCommand::Payment(PaymentCommand::Settle { payment_id, .. }) => {
                self.show.payments.get(payment_id).map(|p| p.order_id)
            }
            _ => None,
        }
    }

    /// Applies a write of this desk's own, stored at `sequence`.
    fn apply_own(&mut self, sequence: u64, subject: &str, event: &Event) {
        if sequence <= self.position || self.beyond.contains(&sequence) {
            return;
        }
        self.show = std::mem::take(&mut self.show).evolve(event);
        self.track(sequence, subject, &subjects::show_stock(self.id));
        self.beyond.insert(sequence);
    }

    /// The latest position this desk knows of.
    fn known(&self) -> u64 {
        self.beyond.last().copied().unwrap_or(0).max(self.position)
    }

    async fn check(&mut self, (request, arrived, reply): (HoldRequest, Instant, Reply<Held>)) {
        let mut result = self.show.decide_holds(std::slice::from_ref(&request), now()).1.pop();
        if !matches!(result, Some(Ok(Held::Placed))) && !self.fresh_for(arrived) {
            if let Err(error) = self.catch_up().await {
                let _ = reply.send(Err(error.into()));
                return;
            }
            result = self.show.decide_holds(std::slice::from_ref(&request), now()).1.pop();
        }
        let answer = match result {
            Some(Ok(held)) => Ok(Seen { value: held, position: self.known() }),
            Some(Err(refusal)) => Err(CommandError::refused(refusal)),
            None => Err(CommandError::Internal("no answer for a check".into())),
        };
        let _ = reply.send(answer);
    }

    /// Decides a group of holds and writes the accepted ones as one event.
    async fn place(&mut self, group: Vec<(HoldRequest, Instant, Reply<ShowOrder>)>) {
        let requests: Vec<HoldRequest> = group.iter().map(|(request, _, _)| request.clone()).collect();
        let latest = group.iter().map(|(_, arrived, _)| *arrived).max().unwrap_or_else(Instant::now);
        let mut outcome: Result<(u64, Vec<Result<Held, ShowError>>), CommandError> = Err(CommandError::Contended);
        for _ in 0..MAX_ATTEMPTS {
            if self.stale
                && let Err(error) = self.catch_up().await
            {
                outcome = Err(error.into());
                break;
            }
            let at = now();
            let (event, answers) = self.show.decide_holds(&requests, at);
            let refused = answers.iter().any(|a| !matches!(a, Ok(Held::Placed)));
            if refused && !self.fresh_for(latest) {
                // Refusals and "already placed" are answered from a state read after they came.
                self.stale = true;
                continue;
            }
            let Some(event) = event else {
                outcome = Ok((self.known(), answers));
                break;
            };
            match self.append_stock(&event).await {
                Ok(sequence) => {
                    outcome = Ok((sequence, answers));
                    break;
                }
                Err(AppendError::Conflict { .. }) => self.stale = true,
                Err(AppendError::Store(error)) => {
                    // Stored or not, nobody knows yet: read it back before the next decision.
                    self.stale = true;
                    outcome = Err(error.into());
                    break;
                }
            }
        }
        match outcome {
            Ok((position, answers)) => {
                for ((request, _, reply), answer) in group.into_iter().zip(answers) {
                    let answer = match answer {
                        Ok(_) => match self.show.orders.get(&request.order_id) {
                            Some(order) => Ok(Seen { value: order.clone(), position }),
                            None => Err(CommandError::Internal("a placed order is missing".into())),
                        },
                        Err(refusal) => Err(CommandError::refused(refusal)),
                    };
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                for (_, _, reply) in group {
                    let _ = reply.send(Err(copy_error(&error)));
                }
            }
        }
    }

    /// Appends to the stock, guarded by its last sequence; on success the state has the event.
    async fn append_stock(&mut self, event: &Event) -> Result<u64, AppendError> {
        let subject = subjects::show_stock(self.id);
        let append = Append {
            subject: subject.clone(),
            event,
            guard: Guard::subject(self.stock_last),
            msg_id: Uuid::new_v4().to_string(),
        };
        let appended = self.store.append(append).await?;
        self.apply_own(appended.sequence, &subject, event);
        Ok(appended.sequence)
    }

    async fn write_stock(&mut self, command: ShowCommand, arrived: Instant) -> Result<Seen<()>, CommandError> {
        for _ in 0..MAX_ATTEMPTS {
            if self.stale {
                self.catch_up().await?;
            }
            let events = match self.show.decide(command.clone()) {
                Ok(events) if !events.is_empty() => events,
                _ if !self.fresh_for(arrived) => {
                    self.stale = true;
                    continue;
                }
                Ok(_) => return Ok(Seen { value: (), position: self.known() }),
                Err(refusal) => return Err(CommandError::refused(refusal)),
            };
            let [event] = events.as_slice() else {
                return Err(CommandError::Internal("a decision produced more than one event".into()));
            };
            match self.append_stock(event).await {
                Ok(sequence) => return Ok(Seen { value: (), position: sequence }),
                Err(AppendError::Conflict { .. }) => self.stale = true,
                Err(AppendError::Store(error)) => {
                    self.stale = true;
                    return Err(error.into());
                }
            }
        }
        Err(CommandError::Contended)
    }

    /// Decides a command on one order; its append runs on its own and reports back.
    async fn order(&mut self, command: ShowCommand, arrived: Instant, attempt: u32, reply: Reply<OrderView>) {
        if attempt >= MAX_ATTEMPTS {
            let _ = reply.send(Err(CommandError::Contended));
            return;
        }
        let mut decided = self.show.decide(command.clone());
        if !matches!(&decided, Ok(events) if !events.is_empty()) && !self.fresh_for(arrived) {
            if let Err(error) = self.catch_up().await {
                let _ = reply.send(Err(error.into()));
                return;
            }
            decided = self.show.decide(command.clone());
        }
        let events = match decided {
            Err(refusal) => {
                let _ = reply.send(Err(CommandError::refused(refusal)));
                return;
            }
            Ok(events) => events,
        };
        let mut view = self.view(self.order_of(&command));
        let Some(event) = events.into_iter().next() else {
            let _ = reply.send(Ok(Seen { value: view, position: self.known() }));
            return;
        };
        let Some(order_id) = event.order_id() else {
            let _ = reply.send(Err(CommandError::Internal("an order's event names no order".into())));
            return;
        };
        let subject = subjects::show_order(self.id, order_id);
        let guard = Guard::subject(self.order_last.get(&order_id).copied().unwrap_or(0));
        let (store, inbox) = (self.store.clone(), self.inbox.clone());
        tokio::spawn(async move {
            let append = Append { subject: subject.clone(), event: &event, guard, msg_id: Uuid::new_v4().to_string() };
            match store.append(append).await {
                Ok(appended) => {
                    // The answer is the order and its payments after the event, as the show folds it.
                    view.order = view.order.map(|o| o.evolve(&event));
                    if let Some(payment_id) = event.payment_id() {
                        let before =
                            view.payments.iter().position(|p| p.id == payment_id).map(|i| view.payments.remove(i));
                        view.payments.extend(Payment::evolve(before, &event));
                    }
                    view.wrote = true;
                    let _ = inbox.send(Job::Written { sequence: appended.sequence, subject, event });
                    let _ = reply.send(Ok(Seen { value: view, position: appended.sequence }));
                }
                Err(AppendError::Conflict { .. }) => {
                    let _ = inbox.send(Job::Stale);
                    let _ = inbox.send(Job::Order { command, arrived, attempt: attempt + 1, reply });
                }
                Err(AppendError::Store(error)) => {
                    let _ = inbox.send(Job::Stale);
                    let _ = reply.send(Err(error.into()));
                }
            }
        });
    }
}

fn fail(job: Job, error: CommandError) {
    match job {
        Job::Hold { reply, .. } => drop(reply.send(Err(error))),
        Job::Check { reply, .. } => drop(reply.send(Err(error))),
        Job::Stock { reply, .. } => drop(reply.send(Err(error))),
        Job::Order { reply, .. } | Job::Find { reply, .. } => drop(reply.send(Err(error))),
        Job::Written { .. } | Job::Stale => {}
    }
}

/// The same error for each of a group's callers.
fn copy_error(error: &CommandError) -> CommandError {
    match error {
        CommandError::Refused { why, written_at } => {
            CommandError::Refused { why: why.clone(), written_at: *written_at }
        }
        CommandError::Store(StoreError::Timeout) => CommandError::Store(StoreError::Timeout),
        CommandError::Store(other) => CommandError::Store(StoreError::Nats(other.to_string())),
        CommandError::Contended => CommandError::Contended,
        CommandError::Internal(text) => CommandError::Internal(text.clone()),
    }
}
