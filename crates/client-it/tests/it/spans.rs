//! Tracing: every operation runs in a span named after it that gets the server's request id when
//! the answer arrives, and nothing traced while the SDK works (its spans and events, the HTTP
//! stack's, the in-process server's) carries a password, a client secret or a token.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use m2m_session_client::{ExposeSecret, LogInRequest, Session, SessionResetPasswordRequest};
use m2m_session_server::domain::Policy;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use crate::support::*;

/// Every span, field recorded later and event, one line each, all levels.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let meta = attrs.metadata();
        self.push(format!(
            "span {} {}{}",
            meta.target(),
            meta.name(),
            fields.0
        ));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        let name = ctx.span(id).map_or("?", |span| span.name());
        self.push(format!("record {name}{}", fields.0));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let scope: Vec<&str> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().map(|span| span.name()).collect())
            .unwrap_or_default();
        let meta = event.metadata();
        self.push(format!(
            "event {} {} [{}]{}",
            meta.level(),
            meta.target(),
            scope.join(" > "),
            fields.0
        ));
    }
}

/// The request id recorded on the span of `operation`, one per call of it.
fn recorded_request_ids(lines: &[String], operation: &str) -> Vec<String> {
    let prefix = format!("record {operation} ");
    lines
        .iter()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.split(" request_id=").nth(1))
        .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

// One thread, so that the in-process server's tasks are traced by the same subscriber.
#[tokio::test(flavor = "current_thread")]
async fn spans_carry_the_operation_and_request_id_and_never_a_secret() {
    let server = CountingServer::start(Policy::default()).await;
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let guard = tracing::subscriber::set_default(subscriber);

    let client = server.client();
    let api = client.session_management();
    let wrong = api
        .start_connectivity_management_session(Some(&LogInRequest::new(
            USERNAME,
            "wrong-password-0",
        )))
        .await
        .unwrap_err();
    let login = api
        .start_connectivity_management_session(Some(&LogInRequest::new(USERNAME, PASSWORD)))
        .await
        .unwrap();
    let token = login.session_token().unwrap();
    api.verify_session(&token).await.unwrap();
    let reset = api
        .reset_connectivity_management_password(&token, &SessionResetPasswordRequest::new(PASSWORD))
        .await
        .unwrap();
    let new_password = reset.new_password().unwrap();
    api.end_connectivity_management_session(&token)
        .await
        .unwrap();
    let expired = api
        .end_connectivity_management_session(&token)
        .await
        .unwrap_err();
    assert!(expired.is_session_expired(), "{expired}");
    // The Session helper's calls too, with a second reset's password.
    let session = Session::new(client.clone(), USERNAME, new_password.clone());
    let newest = session.reset_password().await.unwrap();
    session.logout().await.unwrap();
    drop(guard);

    let lines = capture.lines();
    let all = lines.join("\n");
    for operation in [
        "start_connectivity_management_session",
        "end_connectivity_management_session",
        "reset_connectivity_management_password",
        "verify_session",
    ] {
        assert!(
            all.contains(&format!(
                "span m2m_session_client::controller {operation} operation={operation}"
            )),
            "no span for {operation}:\n{all}"
        );
        let ids = recorded_request_ids(&lines, operation);
        assert!(!ids.is_empty(), "no request id on {operation}:\n{all}");
        for id in ids {
            assert_eq!(id.len(), 32, "{operation}: {id}");
        }
    }
    // An error answer's span has its request id, the one the error reports.
    let failed_id = wrong.request_id().unwrap();
    assert!(
        recorded_request_ids(&lines, "start_connectivity_management_session")
            .iter()
            .any(|id| id == failed_id),
        "{failed_id} not recorded:\n{all}"
    );
    assert!(
        all.contains("record start_connectivity_management_session status=400"),
        "{all}"
    );
    // The API token is fetched in its own span, inside the first operation's.
    assert!(all.contains("span m2m_session_client::oauth oauth_token client_id=app"));

    let authorizations = server.authorizations();
    assert!(authorizations.iter().any(|a| a.starts_with("Basic ")));
    assert!(authorizations.iter().any(|a| a.starts_with("Bearer ")));
    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        "wrong-password-0".into(),
        CLIENT_SECRET.into(),
        token.expose_secret().into(),
        new_password.expose_secret().into(),
        newest.expose_secret().into(),
    ];
    // The credentials as sent: the Basic pair (encoded) and every API token.
    secrets.extend(authorizations.iter().filter_map(|a| {
        a.split_once(' ')
            .map(|(_, credential)| credential.to_owned())
    }));
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !all.contains(secret.as_str()),
            "a secret ({} characters) is in the trace:\n{all}",
            secret.len()
        );
    }
    // Not vacuous: the trace saw the whole run, the server's side included.
    assert!(lines.len() > 20, "{all}");
}
