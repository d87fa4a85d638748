//! The domain takes its clock and its randomness from outside: what it is handed is what it
//! uses, for waiting, for measuring and for every token it draws.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use m2m_session_server::crypto::Randomness;
use m2m_session_server::domain::lockout::{AttemptRequest, AttemptReservation};
use m2m_session_server::domain::{CounterRules, DomainError, Policy, RequestContext};
use m2m_session_server::time::{TimeSource, Timestamp};

use crate::support::*;

/// Every byte the same: tokens drawn from it are known in advance.
struct Constant(u8);

impl Randomness for Constant {
    fn fill(&self, bytes: &mut [u8]) {
        bytes.fill(self.0);
    }
}

/// A clock that moves only when the domain sleeps on it.
#[derive(Default)]
struct Manual {
    elapsed: Mutex<Duration>,
}

#[async_trait]
impl TimeSource for Manual {
    fn now(&self) -> Timestamp {
        T0.plus(self.monotonic())
    }

    fn monotonic(&self) -> Duration {
        *self.elapsed.lock().unwrap()
    }

    async fn sleep(&self, duration: Duration) {
        *self.elapsed.lock().unwrap() += duration;
    }
}

fn ctx() -> RequestContext {
    RequestContext::new(CLIENT_ID, None)
}

#[tokio::test]
async fn session_tokens_come_from_the_randomness_handed_in() {
    let (_dir, svc) = service(Policy::default()).await;
    let svc = svc.with_randomness(Arc::new(Constant(0x42)));
    let token = svc
        .login(&ctx(), USERNAME, &secret(PASSWORD), T0)
        .await
        .unwrap();
    assert_eq!(token.expose(), "42424242-4242-4242-4242-424242424242");
}

#[tokio::test]
async fn a_busy_username_is_waited_for_on_the_clock_handed_in() {
    let (_dir, svc) = service(Policy::default()).await;
    let clock = Arc::new(Manual::default());
    let svc = svc.with_time(clock.clone());
    // Every verification of the username is in flight (the threshold is 5).
    for i in 0..5 {
        let request = AttemptRequest {
            username: USERNAME.into(),
            bucket: String::new(),
            attempt_id: format!("held-{i}"),
            threshold: 5,
            ip: None,
            now: T0,
            expires_at: T0.plus(secs(30)),
        };
        let granted = svc.store().reserve_attempt(&request).await.unwrap();
        assert_eq!(granted, AttemptReservation::Granted);
    }
    let r = svc.login(&ctx(), USERNAME, &secret(PASSWORD), T0).await;
    assert!(matches!(r, Err(DomainError::Busy)), "{r:?}");
    // The whole wait passed on the manual clock, in its own small steps.
    let waited = clock.monotonic();
    let wait = Policy::default().attempt_wait;
    assert!(waited >= wait && waited < wait + secs(1), "{waited:?}");
}
