//! The catalog as other processes see it: over HTTP, products remembered.

use agora_catalog::domain::NewProduct;
use agora_catalog::{api, Catalog, CatalogClient, CatalogError, HttpCatalog, MIGRATIONS};
use agora_platform::events::Money;
use agora_platform::outbox;
use agora_testing::backends;
use uuid::Uuid;

agora_testing::each_backend! {
    async fn a_product_seen_once_is_priced_while_the_catalog_is_down() {
        // The HTTP side is what is under test: one backend is enough, and the
        // others are cleaned up unused.
        let mut all = backends(&[outbox::MIGRATIONS, MIGRATIONS]).await;
        let t = all.remove(0);
        for unused in all {
            unused.cleanup().await;
        }
        let catalog = Catalog::new(t.db.clone());
        let product = catalog
            .create(
                Uuid::now_v7(),
                &NewProduct {
                    name: "Mug".into(),
                    sku: "MUG-1".into(),
                    description: String::new(),
                    price: Money {
                        amount: 1200,
                        currency: "EUR".into(),
                    },
                    initial_stock: 5,
                },
            )
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, api::router(catalog)).await.unwrap();
        });
        let client = HttpCatalog::new(&url);
        assert_eq!(
            client.products(&[product.id]).await.unwrap(),
            std::slice::from_ref(&product)
        );

        server.abort();
        let _ = server.await;

        assert_eq!(
            client.products(&[product.id]).await.unwrap(),
            [product],
            "a product never changes, so the remembered one is still right"
        );
        assert!(
            matches!(
                client.products(&[Uuid::now_v7()]).await,
                Err(CatalogError::Unavailable(_))
            ),
            "an id not seen before is asked for, and the catalog is down"
        );
        t.cleanup().await;
    }
}
