//! Bounds a hostile or buggy peer (or caller) hits: the aggregate size of the long strings held,
//! the output queue, and replies to requests that were never received. Each test drives two cores
//! in memory and asserts the exact wire answer, event and error value.

pub mod support;

use bytes::Bytes;
use support::{Delivery, Pair, VECTOR_KEY, config, origin};
use wazuh_cluster_protocol::connection::{
    Connection, Event, PeerError, Side, TransferFailure, TransferId,
};
use wazuh_cluster_protocol::message::{Reply, text};
use wazuh_cluster_protocol::rng::Rng;

/// A pair whose server holds at most `strings_total` declared string bytes.
fn pair_with_string_total(strings_total: u64) -> Pair {
    let now = origin();
    let root = Rng::from_seed(41);
    let client = Connection::new(config(VECTOR_KEY, now), Side::Client, root.fork(1), now);
    let mut server_config = config(VECTOR_KEY, now);
    server_config.max_incoming_strings_bytes = strings_total;
    let server = Connection::new(server_config, Side::Server, root.fork(2), now);
    Pair::from_cores(client, server, now, Delivery::Whole, root.fork(3))
}

fn string_ids(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StringComplete { id } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn strings_held_are_bounded_in_aggregate_and_released_when_claimed() {
    let mut pair = pair_with_string_total(100);
    let now = pair.now;
    let first = pair
        .client
        .send_string(now, Bytes::from(vec![b'a'; 60]))
        .unwrap();
    pair.drive();
    assert!(pair.client_events.contains(&Event::StringSent {
        transfer: first,
        id: Bytes::from(string_ids(&pair.server_events)[0].to_string()),
    }));
    assert_eq!(pair.server.incoming_strings_reserved(), 60);

    // 60 more declared bytes would hold 120 > 100: refused with our text, reported, not opened.
    let second = pair
        .client
        .send_string(now, Bytes::from(vec![b'b'; 60]))
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::TransferFailed {
            transfer: second,
            failure: TransferFailure::Refused(Reply::Err(Bytes::from_static(
                text::STRINGS_TOTAL_TOO_LARGE
            ))),
        })
    );
    assert_eq!(
        pair.server_events.last(),
        Some(&Event::Violation(PeerError::StringsTotalTooLarge {
            declared: 60,
            reserved: 60,
            limit: 100,
        }))
    );
    assert_eq!(pair.server.incoming_strings(), 1);
    assert!(
        !pair.server.is_closed(),
        "a refused string does not close the link"
    );

    // Exactly up to the bound is accepted.
    let third = pair
        .client
        .send_string(now, Bytes::from(vec![b'c'; 40]))
        .unwrap();
    pair.drive();
    assert!(matches!(
        pair.client_events.last(),
        Some(Event::StringSent { transfer, .. }) if *transfer == third
    ));
    assert_eq!(pair.server.incoming_strings_reserved(), 100);

    // Claiming releases the reservation; the refused string now fits.
    let ids = string_ids(&pair.server_events);
    assert_eq!(
        pair.server.take_string(ids[0]),
        Some(Bytes::from(vec![b'a'; 60]))
    );
    assert_eq!(pair.server.incoming_strings_reserved(), 40);
    let fourth = pair
        .client
        .send_string(now, Bytes::from(vec![b'd'; 60]))
        .unwrap();
    pair.drive();
    assert!(matches!(
        pair.client_events.last(),
        Some(Event::StringSent { transfer, .. }) if *transfer == fourth
    ));
    assert_eq!(pair.server.incoming_strings_reserved(), 100);
    assert_eq!(second, TransferId(1));
}

#[test]
fn unclaimed_strings_release_their_reservation_when_they_expire() {
    let mut pair = pair_with_string_total(100);
    let now = pair.now;
    pair.client
        .send_string(now, Bytes::from(vec![b'a'; 100]))
        .unwrap();
    pair.drive();
    assert_eq!(pair.server.incoming_strings_reserved(), 100);
    let expires = pair.server.poll_timeout().expect("string expiry armed");
    pair.advance_to(expires);
    assert_eq!(pair.server.incoming_strings_reserved(), 0);
    assert_eq!(pair.server.incoming_strings(), 0);
}
