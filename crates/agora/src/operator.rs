//! `agora orders attention | retry-compensation | force-cancel`: the
//! operator's actions on orders whose compensation was not confirmed, over
//! the public API of a running instance (embedded, or the gateway).

use serde_json::Value;

#[derive(clap::Args, Debug, Clone)]
pub struct OrdersArgs {
    #[command(subcommand)]
    pub command: OrdersCommand,
    /// Base URL of the running instance.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// An operator's (or admin's) credentials.
    #[command(flatten)]
    pub credentials: crate::credentials::Credentials,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum OrdersCommand {
    /// List the orders that require attention.
    Attention,
    /// Emit the pending compensation of an order again.
    RetryCompensation { id: String },
    /// End an order without waiting for its compensation to be confirmed.
    ForceCancel { id: String },
}

pub async fn run(args: OrdersArgs) -> anyhow::Result<()> {
    let client = args.credentials.client(&args.url).await?;
    let base = args.url.trim_end_matches('/');
    let (response, action) = match &args.command {
        OrdersCommand::Attention => {
            let page: Value = client
                .get(format!(
                    "{base}/api/v1/orders?status=REQUIRES_ATTENTION&limit=500"
                ))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let orders = page["items"].as_array().cloned().unwrap_or_default();
            for o in &orders {
                println!(
                    "{}  {}  {}",
                    o["id"].as_str().unwrap_or(""),
                    o["updated_at"].as_str().unwrap_or(""),
                    o["reason"].as_str().unwrap_or("")
                );
            }
            println!("{} orders require attention", orders.len());
            return Ok(());
        }
        OrdersCommand::RetryCompensation { id } => (
            client
                .post(format!("{base}/api/v1/orders/{id}/retry-compensation"))
                .send()
                .await?,
            "compensation retried",
        ),
        OrdersCommand::ForceCancel { id } => (
            client
                .post(format!("{base}/api/v1/orders/{id}/force-cancel"))
                .send()
                .await?,
            "force-cancelled",
        ),
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status.is_success(),
        "{status}: {}",
        body["detail"].as_str().unwrap_or("refused")
    );
    println!(
        "{action}: order {} is now {}",
        body["id"].as_str().unwrap_or(""),
        body["status"].as_str().unwrap_or("")
    );
    Ok(())
}
