//! The subscriptions' streams. Each reads what it follows through the API
//! every [`POLL`](crate::schema::POLL), as its caller: the same reads, and
//! the same ownership and roles at every read, in both modes (the embedded
//! app has no broker a gateway could listen to, and a gateway's consumer
//! would see events before their state is readable). An answer the API
//! could not give now (503) is asked again at the next tick; any other
//! refusal ends the stream with its error.

use std::collections::VecDeque;

use agora_platform::client::Caller;
use async_graphql::futures_util::{stream, Stream};
use async_graphql::Result;

use crate::refusal::read;
use crate::schema::POLL;
use crate::types::{Order, OrderStatusChange, Stock};

struct Following {
    caller: Caller,
    path: String,
    /// What was read at subscription time, given out first.
    first: Option<Order>,
    /// State changes of the timeline already pushed.
    seen: usize,
    pending: VecDeque<OrderStatusChange>,
    done: bool,
}

/// The order's changes of state, oldest first, until it is final.
pub fn order_changes(
    caller: Caller,
    path: String,
    first: Order,
) -> impl Stream<Item = Result<OrderStatusChange>> {
    let start = Following {
        caller,
        path,
        first: Some(first),
        seen: 0,
        pending: VecDeque::new(),
        done: false,
    };
    stream::unfold(start, |mut f| async move {
        loop {
            if let Some(change) = f.pending.pop_front() {
                return Some((Ok(change), f));
            }
            if f.done {
                return None;
            }
            let order = match f.first.take() {
                Some(order) => order,
                None => {
                    tokio::time::sleep(POLL).await;
                    match next_read(&f.caller, &f.path).await {
                        Some(Ok(order)) => order,
                        Some(Err(e)) => {
                            f.done = true;
                            return Some((Err(e), f));
                        }
                        None => continue,
                    }
                }
            };
            f.take_changes(&order);
        }
    })
}

impl Following {
    fn take_changes(&mut self, order: &Order) {
        let changes: Vec<_> = order.timeline.iter().filter(|e| e.is_change()).collect();
        let last = changes.len();
        for (i, entry) in changes.iter().enumerate().skip(self.seen) {
            let ends = order.status.is_final() && i + 1 == last;
            self.pending.push_back(OrderStatusChange {
                order_id: order.id.clone(),
                from: entry.from,
                status: entry.to,
                at: entry.at.clone(),
                cause: entry.cause.clone(),
                reason: order.reason.clone(),
                r#final: ends,
            });
        }
        self.seen = self.seen.max(last);
        self.done = order.status.is_final();
    }
}

/// A read of the API; `None` when it could not answer now.
async fn next_read<T: serde::de::DeserializeOwned>(
    caller: &Caller,
    path: &str,
) -> Option<Result<T>> {
    let answer = caller.get(path).await;
    match answer.status.as_u16() {
        503 => None,
        _ => Some(read(answer)),
    }
}

/// The stock now, then each different level.
pub fn stock_changes(
    caller: Caller,
    path: String,
    first: Stock,
) -> impl Stream<Item = Result<Stock>> {
    let start = Level {
        caller,
        path,
        last: None,
        first: Some(first),
        done: false,
    };
    stream::unfold(start, |mut l| async move {
        if let Some(first) = l.first.take() {
            l.last = Some(first.clone());
            return Some((Ok(first), l));
        }
        while !l.done {
            tokio::time::sleep(POLL).await;
            match next_read::<Stock>(&l.caller, &l.path).await {
                Some(Ok(stock)) if l.last.as_ref() != Some(&stock) => {
                    l.last = Some(stock.clone());
                    return Some((Ok(stock), l));
                }
                Some(Ok(_)) | None => continue,
                Some(Err(e)) => {
                    l.done = true;
                    return Some((Err(e), l));
                }
            }
        }
        None
    })
}

struct Level {
    caller: Caller,
    path: String,
    last: Option<Stock>,
    first: Option<Stock>,
    done: bool,
}
