//! Connection events against a real broker: bounded per listener, with the missed count.

use futures_util::FutureExt;
use sansmqtt_client::{EVENT_BUFFER, Jitter};

use super::*;

/// The broker dies and the client retries forever at a millisecond's interval: hundreds of
/// events. A listener that never polls holds at most `EVENT_BUFFER` of them all along; polled
/// at last, it says how many it missed, then yields the newest ones, ending with `Closed`, and
/// the two add up to what a listener that kept up saw.
pub async fn a_listener_that_never_polls_stays_bounded_and_learns_what_it_missed<
    R: Runtime + Default,
>() {
    let mut broker = Mosquitto::start();
    let config = ClientConfig::default()
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(1))
        .reconnect_max_interval(Duration::from_millis(1))
        .reconnect_jitter(Jitter::None)
        .connect_timeout(BOUND);
    let client = connected::<R>(&broker.uri(), config).await;
    let mut late = client.connection_events();
    let mut prompt = client.connection_events();
    broker.kill();
    let wanted = 4 * EVENT_BUFFER;
    let mut seen = 0;
    while seen < wanted {
        let (event, _) = wait_for_event::<R, _>(&mut prompt, BOUND, "an event", |_| true).await;
        assert!(
            !matches!(event, ConnectionEvent::Missed { .. }),
            "a listener that keeps up missed events"
        );
        seen += 1;
        assert!(
            late.len() <= EVENT_BUFFER,
            "{} events wait for the idle listener",
            late.len()
        );
    }
    with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
        .await
        .expect("disconnect while reconnecting");
    let (_, before) = wait_for_event::<R, _>(&mut prompt, BOUND, "Closed", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
    let total = (seen + before.len() + 1) as u64;
    assert_eq!(
        late.len(),
        EVENT_BUFFER,
        "the idle listener holds a full buffer"
    );

    let mut delivered = Vec::new();
    while let Some(Some(event)) = late.next().now_or_never() {
        delivered.push(event);
    }
    let Some(ConnectionEvent::Missed { count }) = delivered.first() else {
        panic!("the late listener's first event is not Missed: {delivered:?}");
    };
    assert_eq!(delivered.len() - 1, EVENT_BUFFER, "{delivered:?}");
    assert_eq!(
        count + EVENT_BUFFER as u64,
        total,
        "missed + delivered = every event"
    );
    assert!(
        matches!(delivered.last(), Some(ConnectionEvent::Closed)),
        "the newest event is kept: {:?}",
        delivered.last()
    );
}
