//! The checker against hand-written histories: each violation kind once, and the histories
//! that must pass (late start, announced epoch change, latency bookkeeping).

use super::*;

const CH: u16 = 0;
const S: StreamId = StreamId {
    subscriber: 0,
    channel: CH,
};

fn id(seq: u64) -> PubId {
    PubId { publisher: 1, seq }
}

/// Publications `from..=to` (sequence numbers `offset - 1 + shift`) attempted and acknowledged
/// in `epoch`.
fn publish(c: &mut Checker, epoch: &str, from: u64, to: u64, shift: u64) {
    for o in from..=to {
        let i = id(o - 1 + shift);
        c.attempted(i, CH);
        c.acked(i, CH, epoch, o, 0);
    }
}

fn deliver(c: &mut Checker, epoch: &str, offsets: &[u64], shift: u64) {
    for &o in offsets {
        c.delivered(
            S,
            epoch,
            o,
            Some(id(o - 1 + shift)),
            Some(1000),
            Seen::default(),
        );
    }
}

fn ws(f: &Findings) -> &TransportFindings {
    &f.transports[0]
}

fn started() -> Checker {
    let mut c = Checker::new(1);
    c.register(S, Transport::Ws);
    c.started(S, Transport::Ws, "e1", 0);
    c
}

#[test]
fn a_clean_history_passes() {
    let mut c = started();
    publish(&mut c, "e1", 1, 5, 0);
    deliver(&mut c, "e1", &[1, 2, 3, 4, 5], 0);
    assert_eq!(c.pending().0, 0);
    let f = c.finish();
    assert_eq!(f.violations(), 0, "{f:#?}");
    assert_eq!((ws(&f).deliveries, ws(&f).expected), (5, 5));
    assert_eq!(ws(&f).calm_latency.count, 5);
    assert_eq!(f.acknowledged, 5);
}

#[test]
fn a_jump_is_a_gap_and_what_it_skipped_is_lost() {
    let mut c = started();
    publish(&mut c, "e1", 1, 5, 0);
    deliver(&mut c, "e1", &[1, 2, 4, 5], 0);
    let f = c.finish();
    assert_eq!((ws(&f).gaps, ws(&f).lost), (1, 1), "{f:#?}");
    assert!(
        f.examples
            .iter()
            .any(|e| e.contains("lost") && e.contains("e1:3"))
    );
}

#[test]
fn publications_never_reached_at_the_end_are_lost() {
    let mut c = started();
    publish(&mut c, "e1", 1, 5, 0);
    deliver(&mut c, "e1", &[1, 2, 3], 0);
    assert_eq!(c.pending().0, 1);
    let f = c.finish();
    assert_eq!((ws(&f).gaps, ws(&f).lost), (0, 2));
}

#[test]
fn repeats_are_duplicates_and_late_ones_reordered() {
    let mut c = started();
    publish(&mut c, "e1", 1, 5, 0);
    deliver(&mut c, "e1", &[1, 2, 2, 4, 3, 5, 3], 0);
    let f = c.finish();
    let w = ws(&f);
    // The second 2 and the second 3 repeat; 3 arrived after 4.
    assert_eq!(
        (w.duplicated, w.reordered, w.gaps, w.lost),
        (2, 1, 1, 0),
        "{f:#?}"
    );
}

#[test]
fn an_announced_epoch_change_excuses_what_the_old_epoch_did_not_deliver() {
    let mut c = started();
    publish(&mut c, "e1", 1, 3, 0);
    deliver(&mut c, "e1", &[1, 2], 0);
    c.fault(1_000_000, true);
    c.announced(S, Transport::Ws, "e2", 0, Some(1_250_000));
    publish(&mut c, "e2", 1, 2, 100);
    deliver(&mut c, "e2", &[1, 2], 100);
    let f = c.finish();
    assert_eq!(f.violations(), 0, "{f:#?}");
    let w = ws(&f);
    assert_eq!(w.announcements, 1);
    assert_eq!(w.fault_to_announcement.count, 1);
    assert!((w.fault_to_announcement.p50_ms - 250.0).abs() < 1.0);
    assert_eq!(f.max_epochs_per_channel, 2);
}

#[test]
fn an_unannounced_epoch_change_is_caught_and_the_old_tail_is_lost() {
    let mut c = started();
    publish(&mut c, "e1", 1, 3, 0);
    deliver(&mut c, "e1", &[1, 2], 0);
    c.fault(1_000_000, true);
    publish(&mut c, "e2", 1, 2, 100);
    deliver(&mut c, "e2", &[1, 2], 100);
    let f = c.finish();
    let w = ws(&f);
    assert_eq!((w.silent_epoch_changes, w.lost), (1, 1), "{f:#?}");
}

#[test]
fn a_subscriber_never_told_of_the_new_epoch_is_stale() {
    let mut c = started();
    publish(&mut c, "e1", 1, 2, 0);
    deliver(&mut c, "e1", &[1, 2], 0);
    c.fault(1_000_000, true);
    publish(&mut c, "e2", 1, 2, 100);
    assert_eq!(c.pending().0, 1);
    let f = c.finish();
    let w = ws(&f);
    assert_eq!((w.stale, w.lost), (1, 2), "{f:#?}");
}

#[test]
fn wrong_unreadable_or_invented_data_is_unexpected() {
    let mut c = started();
    publish(&mut c, "e1", 1, 3, 0);
    c.delivered(S, "e1", 1, Some(id(7)), None, Seen::default()); // acknowledged at 1 was id(0)
    c.delivered(S, "e1", 2, None, None, Seen::default()); // unreadable
    let mut d = started();
    d.attempted(id(0), CH);
    d.delivered(S, "e1", 1, Some(id(0)), None, Seen::default());
    d.delivered(S, "e1", 2, Some(id(9)), None, Seen::default()); // never attempted, never acknowledged
    let (f, g) = (c.finish(), d.finish());
    assert_eq!(ws(&f).unexpected, 2, "{f:#?}");
    assert_eq!(ws(&g).unexpected, 1, "{g:#?}");
}

#[test]
fn two_streams_disagreeing_on_a_position_is_unexpected() {
    let mut c = started();
    let other = StreamId {
        subscriber: 1,
        channel: CH,
    };
    c.register(other, Transport::Sse);
    c.started(other, Transport::Sse, "e1", 0);
    c.attempted(id(0), CH);
    c.attempted(id(1), CH);
    c.delivered(S, "e1", 1, Some(id(0)), None, Seen::default());
    c.delivered(other, "e1", 1, Some(id(1)), None, Seen::default());
    let f = c.finish();
    assert_eq!(f.transports[1].unexpected, 1, "{f:#?}");
}

#[test]
fn one_publication_at_two_positions_is_stored_twice() {
    let mut c = started();
    c.attempted(id(0), CH);
    c.acked(id(0), CH, "e1", 1, 0);
    c.delivered(S, "e1", 1, Some(id(0)), None, Seen::default());
    c.delivered(S, "e1", 2, Some(id(0)), None, Seen::default());
    let f = c.finish();
    assert_eq!(f.stored_twice, 1, "{f:#?}");
}

#[test]
fn a_new_epoch_needs_a_wipe() {
    let mut c = Checker::new(1);
    publish(&mut c, "e1", 1, 1, 0);
    publish(&mut c, "e2", 1, 1, 10);
    assert_eq!(c.finish().unexplained_epoch_changes, 1);
    let mut c = Checker::new(1);
    publish(&mut c, "e1", 1, 1, 0);
    c.fault(5, true);
    publish(&mut c, "e2", 1, 1, 10);
    c.fault(6, false);
    publish(&mut c, "e2", 2, 2, 10);
    assert_eq!(c.finish().unexplained_epoch_changes, 0);
}

#[test]
fn an_announcement_that_keeps_the_epoch_is_spurious() {
    let mut c = started();
    publish(&mut c, "e1", 1, 4, 0);
    deliver(&mut c, "e1", &[1], 0);
    c.announced(S, Transport::Ws, "e1", 3, Some(10));
    deliver(&mut c, "e1", &[4], 0);
    let f = c.finish();
    let w = ws(&f);
    assert_eq!((w.spurious_announcements, w.lost, w.gaps), (1, 0, 0));
}

#[test]
fn a_late_subscriber_owes_nothing_before_its_start() {
    let mut c = Checker::new(1);
    c.register(S, Transport::Poll);
    publish(&mut c, "e1", 1, 3, 0);
    c.started(S, Transport::Poll, "e1", 3);
    publish(&mut c, "e1", 4, 5, 0);
    deliver(&mut c, "e1", &[4, 5], 0);
    let f = c.finish();
    assert_eq!(f.violations(), 0, "{f:#?}");
    assert_eq!(f.transports[2].expected, 2);
}

#[test]
fn a_subscriber_that_never_subscribed_is_reported() {
    let mut c = Checker::new(1);
    c.register(S, Transport::Sse);
    assert_eq!(c.pending().0, 1);
    let f = c.finish();
    assert_eq!(f.transports[1].never_started, 1);
    assert_eq!(f.violations(), 1);
}

#[test]
fn a_delivery_before_subscribing_is_unexpected() {
    let mut c = Checker::new(1);
    c.register(S, Transport::Ws);
    c.delivered(S, "e1", 1, Some(id(0)), None, Seen::default());
    assert_eq!(ws(&c.finish()).unexpected, 1);
}
