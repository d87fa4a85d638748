//! Opening a database as a person names it, and copying it: what is created, what is refused,
//! and what each refusal says.

use m2m_session_server::store::{self, StoreError, StoreSettings};

use crate::conformance::user;
use crate::support::*;

fn existing_only() -> StoreSettings {
    StoreSettings {
        create_if_missing: false,
        ..StoreSettings::default()
    }
}

fn config_message(result: Result<impl Sized, StoreError>) -> String {
    match result {
        Err(StoreError::Config(message)) => message,
        Err(other) => panic!("not a configuration error: {other}"),
        Ok(_) => panic!("opened"),
    }
}

#[tokio::test]
async fn a_missing_sqlite_file_is_created_only_when_asked() {
    let (dir, url) = temp_db();
    let path = dir.path().join("m2m.db");
    let message = config_message(store::open(&url, &existing_only()).await);
    assert!(message.starts_with("no database at "), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!path.exists(), "nothing may be created");
    store::open(&url, &StoreSettings::default()).await.unwrap();
    assert!(path.exists());
    // Once there, it opens without creating.
    store::open(&url, &existing_only()).await.unwrap();
}

#[tokio::test]
async fn a_missing_directory_and_an_unknown_scheme_are_said_plainly() {
    let message = config_message(
        store::open(
            "sqlite:///nonexistent-dir/sub/m2m.db",
            &StoreSettings::default(),
        )
        .await,
    );
    assert!(
        message.contains(": /nonexistent-dir/sub does not exist; create the directory"),
        "{message}"
    );
    let message =
        config_message(store::open("mysql://root@127.0.0.1/test", &StoreSettings::default()).await);
    assert!(
        message.starts_with("mysql:// databases are not supported"),
        "{message}"
    );
    assert!(!std::path::Path::new("mysql:").exists());
}

#[tokio::test]
async fn a_sqlite_backup_is_a_consistent_copy_and_never_overwrites() {
    let (dir, url) = temp_db();
    let source = sqlite_store(&url).await;
    source.insert_user(&user("alice")).await.unwrap();
    let copy = dir.path().join("backup.db");
    source.backup_to(&copy).await.unwrap();
    // The copy is a database of its own, with the data, while the source stays in use.
    source.insert_user(&user("bob")).await.unwrap();
    let restored = sqlite_store(&format!("sqlite://{}", copy.display())).await;
    let names: Vec<String> = restored
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice"]);
    let message = config_message(source.backup_to(&copy).await);
    assert!(message.contains("already exists"), "{message}");
}

#[tokio::test]
async fn a_postgres_backup_names_the_tools_to_use() {
    let (_db, store) = postgres_store().await;
    let dir = tempfile::tempdir().unwrap();
    let message = config_message(store.backup_to(&dir.path().join("b.db")).await);
    assert!(message.contains("pg_dump"), "{message}");
}

#[tokio::test]
async fn a_postgres_server_that_is_not_there_is_named_as_refused() {
    // A loopback port just given up by the system: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let message = match store::open(&url, &StoreSettings::default()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened"),
    };
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!message.contains("pool timed out"), "{message}");
}
