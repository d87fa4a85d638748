//! Test support shared by this workspace's test suites: the standard client and user, and a
//! throwaway PostgreSQL database.
//!
//! Public (not `cfg(test)`) because the client and CLI crates' tests use it too; it holds no
//! production logic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use secrecy::SecretString;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::crypto::{Argon2Settings, PasswordHasher};
use crate::domain::{Admin, NewClient, NewUser};
use crate::store::Store;
use crate::time::Timestamp;

/// The OAuth client and user every test suite starts with.
pub const CLIENT_ID: &str = "app";
pub const CLIENT_SECRET: &str = "app-secret-0123456789";
pub const USERNAME: &str = "zbeeblebrox";
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
