//! The saga's policy, `decide`: called once for every event an order sees,
//! so its cost is paid seven times or more per order.

use std::hint::black_box;

use agora_order::domain::{decide, Awaiting, Input, OrderStatus};
use criterion::{criterion_group, criterion_main, Criterion};

fn happy_path(c: &mut Criterion) {
    let steps = [
        (OrderStatus::Pending, Input::StockReserved),
        (OrderStatus::Reserved, Input::PaymentSucceeded),
        (
            OrderStatus::Paid,
            Input::ShippingCreated {
                tracking_number: "TRK-0001".into(),
            },
        ),
    ];
    c.bench_function("decide: the three steps of a completed order", |b| {
        b.iter(|| {
            for (status, input) in &steps {
                black_box(decide(black_box(*status), Awaiting::NONE, black_box(input)));
            }
        })
    });
}

fn compensation_and_duplicates(c: &mut Criterion) {
    let cancel = Input::CancelRequested {
        reason: "changed my mind".into(),
    };
    c.bench_function("decide: a cancellation of a paid order", |b| {
        b.iter(|| {
            black_box(decide(
                OrderStatus::Paid,
                Awaiting::NONE,
                black_box(&cancel),
            ))
        })
    });
    c.bench_function("decide: a late duplicate, ignored", |b| {
        b.iter(|| {
            black_box(decide(
                OrderStatus::Completed,
                Awaiting::NONE,
                black_box(&Input::StockReserved),
            ))
        })
    });
}

criterion_group!(benches, happy_path, compensation_and_duplicates);
criterion_main!(benches);
