//! Stock moves: what inventory's handlers do to the levels a batch has
//! read and locked, before writing the changed ones back.

use std::hint::black_box;

use agora_inventory::domain::{Bucket, Level, Levels};
use agora_platform::events::LineItem;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use uuid::Uuid;

/// Levels for `products` products, and an order of one unit of each.
fn stocked(products: usize) -> (Levels, Vec<LineItem>) {
    let mut levels = Levels::default();
    let mut items = Vec::new();
    for _ in 0..products {
        let product_id = Uuid::now_v7();
        levels.insert(
            product_id,
            Level {
                available: 1_000_000,
                reserved: 0,
                sold: 0,
            },
        );
        items.push(LineItem {
            product_id,
            quantity: 1,
        });
    }
    (levels, items)
}

fn moves(c: &mut Criterion) {
    for products in [1, 10] {
        let (levels, items) = stocked(products);
        c.bench_function(
            &format!("reserve, sell and write back an order of {products} products"),
            |b| {
                b.iter_batched_ref(
                    || levels.clone(),
                    |levels| {
                        levels.reserve(black_box(&items)).expect("in stock");
                        levels.shift(&items, Bucket::Reserved, Bucket::Sold);
                        black_box(levels.take_changed())
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    let (mut levels, items) = stocked(10);
    for level in items.iter() {
        levels.insert(level.product_id, Level::default());
    }
    c.bench_function("refuse an order of 10 products out of stock", |b| {
        b.iter(|| black_box(levels.reserve(black_box(&items)).unwrap_err()))
    });
}

criterion_group!(benches, moves);
criterion_main!(benches);
