//! Test support for m2m-session: a real server in the test's process ([`TestServer`]), the
//! standard OAuth client and user every suite starts with, the cheapest password hasher, and a
//! throwaway PostgreSQL database per test.
//!
//! A crate of its own, so that none of it ships in the server library: the server's, the SDK's
//! and the CLI's tests take it as a dev-dependency, the benchmark commands as a dependency.
#![warn(missing_docs)]

mod server;

pub use server::{DEVICE_API_PATH, TestServer, TestServerBuilder};

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use secrecy::SecretString;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use m2m_session_server::crypto::{Argon2Settings, PasswordHasher};
use m2m_session_server::domain::{Admin, NewClient, NewUser};
use m2m_session_server::store::Store;
use m2m_session_server::time::Timestamp;

/// The OAuth client every test suite starts with (see [`seed`]).
pub const CLIENT_ID: &str = "app";
/// [`CLIENT_ID`]'s secret.
pub const CLIENT_SECRET: &str = "app-secret-0123456789";
/// The user every test suite starts with, of account `acme`.
pub const USERNAME: &str = "zbeeblebrox";
/// [`USERNAME`]'s password: long enough for the password policy.
pub const PASSWORD: &str = "IMgr8-but-longer";

/// The cheapest hasher argon2 allows: tests need correctness, not cost.
pub fn cheap_hasher() -> PasswordHasher {
    PasswordHasher::new(Argon2Settings::MINIMUM, 2)
        .unwrap_or_else(|e| panic!("minimum argon2 parameters refused: {e}"))
}

/// Adds [`CLIENT_ID`] and [`USERNAME`] (account `acme`) through the admin façade.
pub async fn seed(store: Arc<dyn Store>, now: Timestamp) {
    let admin = Admin::new(store, cheap_hasher());
    let client = NewClient {
        client_id: CLIENT_ID.into(),
        secret: Some(SecretString::from(CLIENT_SECRET)),
        scopes: vec![],
    };
    admin
        .add_client(client, now)
        .await
        .unwrap_or_else(|e| panic!("seeding the test client failed: {e}"));
    let user = NewUser {
        username: USERNAME.into(),
        account: Some("acme".into()),
        password: Some(SecretString::from(PASSWORD)),
    };
    admin
        .add_user(user, now)
        .await
        .unwrap_or_else(|e| panic!("seeding the test user failed: {e}"));
}

/// Where the test PostgreSQL is: `M2M_TEST_POSTGRES_URL`, or the machine's default.
pub fn postgres_admin_url() -> String {
    std::env::var("M2M_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database created for one test and dropped (forcibly) when this guard is dropped, so test
/// runs never see each other's data.
#[derive(Debug)]
pub struct PgTestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgTestDatabase {
    /// Creates the database, or panics with how to start PostgreSQL: a missing service fails
    /// loudly, it never skips.
    pub async fn create() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = postgres_admin_url();
        let name = format!(
            "m2m_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url}: {e}. Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                 or point M2M_TEST_POSTGRES_URL at one."
            )
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = conn.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("M2M_TEST_POSTGRES_URL must end with /DATABASE"),
        };
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// The connection URL of this test's own database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs outside any async context guarantee: use a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&drop_sql).execute(&mut conn).await.ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}
