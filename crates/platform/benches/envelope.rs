//! The event envelope: built, written and read back once for every event
//! (seven or more per order), on every transport.

use std::hint::black_box;

use agora_platform::consumer::parse_envelope;
use agora_platform::events::{Address, Money, OrderCreated, PricedItem};
use agora_platform::Envelope;
use criterion::{criterion_group, criterion_main, Criterion};
use uuid::Uuid;

/// An order's first event, with `items` lines: the largest the saga sends.
fn order_created(items: usize) -> OrderCreated {
    OrderCreated {
        order_id: Uuid::now_v7(),
        customer_id: Uuid::now_v7().to_string(),
        email: "ada@example.com".into(),
        phone: None,
        items: (0..items)
            .map(|i| PricedItem {
                product_id: Uuid::now_v7(),
                sku: format!("SKU-{i:04}"),
                name: format!("Product {i}"),
                quantity: 1,
                unit_price: 2_500,
            })
            .collect(),
        total: Money {
            amount: 2_500 * items as i64,
            currency: "EUR".into(),
        },
        shipping_address: Address {
            name: "Ada Lovelace".into(),
            line1: "1 Analytical Engine St".into(),
            line2: None,
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "GB".into(),
        },
    }
}

fn envelope(c: &mut Criterion) {
    for items in [1, 10] {
        let event = order_created(items);
        c.bench_function(&format!("build an envelope ({items} lines)"), |b| {
            b.iter(|| black_box(Envelope::root(black_box(&event))))
        });
        let envelope = Envelope::root(&event);
        c.bench_function(&format!("encode an envelope ({items} lines)"), |b| {
            b.iter(|| black_box(serde_json::to_string(black_box(&envelope)).unwrap()))
        });
        let body = serde_json::to_string(&envelope).unwrap();
        c.bench_function(
            &format!("decode an envelope and its event ({items} lines)"),
            |b| {
                b.iter(|| {
                    let envelope = parse_envelope(black_box(&body)).unwrap();
                    black_box(envelope.decode::<OrderCreated>().unwrap())
                })
            },
        );
    }
}

criterion_group!(benches, envelope);
criterion_main!(benches);
