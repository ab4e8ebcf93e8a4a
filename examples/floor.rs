//! The floor for bench/api.sh: the same HTTP stack as the daemon (hyper on
//! tokio, one thread a core) answering every request with a fixed small
//! JSON body and doing nothing else. What the daemon's `/health` reaches
//! of this server's rate, in the same run, is the figure that counts.
//!
//! Usage: floor ADDR:PORT (runs until killed).

use std::convert::Infallible;

use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const BODY: &[u8] = br#"{"status":"pass","output":"floor"}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("floor listening on {}", listener.local_addr()?);
    loop {
        let (socket, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                Ok::<_, Infallible>(
                    hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(Bytes::from_static(BODY)))
                        .expect("a fixed response"),
                )
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
