//! The history checker: pure bookkeeping, no IO and no clock (times are passed in, in
//! microseconds since the run started). Publishers feed it attempts and acknowledgements,
//! subscribers feed it what they saw; [`Checker::finish`] classifies everything.
//!
//! A subscriber's view of a channel (a *stream*) is a list of **segments**. A segment starts
//! where the subscriber stood when it subscribed without a position ([`Checker::started`]) or
//! where the server put it after announcing a discontinuity ([`Checker::announced`]:
//! `recovered:false`, SSE `reset`, poll `reset`). Within a segment, one epoch, offsets must
//! arrive strictly increasing by exactly one:
//! - an offset seen before in this stream and epoch is **duplicated**;
//! - an offset below the last one, not seen before, is **reordered**;
//! - a jump forward is a **gap** (an event; what it skipped is counted as lost at the end);
//! - a delivery in another epoch than the segment's, with no announcement in between, is a
//!   **silent epoch change** (a new segment starts from offset 0 of that epoch).
//!
//! At the end, every segment covers `(start, last delivered]`; the stream's final segment, and
//! any segment left by a silent epoch change, covers up to the last acknowledged offset of its
//! epoch. An acknowledged publication inside a covered range that the stream never received is
//! **lost**. A stream whose final segment is not in its channel's newest epoch was never told
//! about the new epoch: it is **stale**, and the newest epoch's acknowledged publications count
//! as lost for it. **Unexpected**: a delivery whose data is unreadable, names a publication no
//! publisher attempted on that channel, differs from another delivery at the same position, or
//! differs from the publication acknowledged at that position. Two positions of one epoch
//! holding the same publication are **stored twice** (the idempotency key did not hold).
//!
//! Contract checks besides loss: an announcement that does not change the epoch is
//! **spurious** (history is sized so that every resume can be served), and a channel whose
//! acknowledgements show more epochs than Redis data losses (wipes) has an **unexplained epoch
//! change** (a Redis restart with persistence must keep epochs).

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ranges::Ranges;

/// A subscriber's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket.
    Ws,
    /// Server-Sent Events.
    Sse,
    /// Long-polling.
    Poll,
}

impl Transport {
    /// Every transport, in report order.
    pub const ALL: [Transport; 3] = [Transport::Ws, Transport::Sse, Transport::Poll];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
            Transport::Poll => "poll",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One publication as the publishers number them: publisher and its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PubId {
    /// Publisher index (below 2^16).
    pub publisher: u32,
    /// Sequence number within the publisher (below 2^40).
    pub seq: u64,
}

impl PubId {
    fn pack(self) -> u64 {
        (u64::from(self.publisher) << 40) | (self.seq + 1)
    }

    fn unpack(v: u64) -> Option<PubId> {
        (v != EMPTY && v != UNREADABLE).then(|| PubId {
            publisher: (v >> 40) as u32,
            seq: (v & ((1 << 40) - 1)) - 1,
        })
    }
}

impl std::fmt::Display for PubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}#{}", self.publisher, self.seq)
    }
}

const EMPTY: u64 = 0;
/// Channel recorded for a sequence number that was skipped.
const NOT_ATTEMPTED: u16 = u16::MAX;
const UNREADABLE: u64 = u64::MAX;

/// Where and when a delivery arrived, for the descriptions of violations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// When, µs since the run started.
    pub at_us: u64,
    /// Through which node.
    pub node: u8,
    /// How long after its connection (or poll request) was opened, µs.
    pub conn_us: u64,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at {:.3} s via node-{}, {} ms into the connection",
            self.at_us as f64 / 1e6,
            self.node,
            self.conn_us / 1000
        )
    }
}

/// One subscriber's view of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// Subscriber index.
    pub subscriber: u32,
    /// Channel index.
    pub channel: u16,
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sub{}/ch{}", self.subscriber, self.channel)
    }
}

/// Positions of one epoch of one channel.
#[derive(Default)]
struct EpochTable {
    /// Publication acknowledged at each offset (packed [`PubId`], `EMPTY` when none).
    acked: Vec<u64>,
    /// First publication delivered at each offset, and by which transport.
    seen: Vec<u64>,
    seen_by: Vec<u8>,
    /// When each acknowledgement arrived, ms since the run started.
    ack_ms: Vec<u32>,
    max_acked: u64,
}

impl EpochTable {
    fn grow(&mut self, offset: u64) {
        let need = offset as usize + 1;
        if self.acked.len() < need {
            self.acked.resize(need, EMPTY);
            self.seen.resize(need, EMPTY);
            self.seen_by.resize(need, 0);
            self.ack_ms.resize(need, 0);
        }
    }

    fn acked_at(&self, offset: u64) -> u64 {
        self.acked.get(offset as usize).copied().unwrap_or(EMPTY)
    }
}

#[derive(Default)]
struct ChannelState {
    /// Epochs in the order their first acknowledgement arrived.
    epochs: Vec<u32>,
    tables: HashMap<u32, EpochTable>,
}

impl ChannelState {
    fn newest(&self) -> Option<u32> {
        self.epochs.last().copied()
    }

    fn max_acked(&self, epoch: u32) -> u64 {
        self.tables.get(&epoch).map_or(0, |t| t.max_acked)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Open,
    Announced,
    Silent,
}

#[derive(Clone, Debug)]
struct Segment {
    epoch: u32,
    base: u64,
    last: u64,
    end: End,
}

struct Stream {
    transport: Transport,
    segments: Vec<Segment>,
    delivered: HashMap<u32, Ranges>,
}

struct Counters {
    streams: u64,
    deliveries: u64,
    expected: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    gaps: u64,
    unexpected: u64,
    silent_epoch_changes: u64,
    stale: u64,
    never_started: u64,
    announcements: u64,
    spurious_announcements: u64,
    announce_latency: Histogram<u64>,
    calm_latency: Histogram<u64>,
}

impl Counters {
    fn new() -> Self {
        // Constant bounds (1 µs .. 1 h, 3 digits), valid by construction: nothing from a run
        // reaches this call.
        let h = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Self {
            streams: 0,
            deliveries: 0,
            expected: 0,
            lost: 0,
            duplicated: 0,
            reordered: 0,
            gaps: 0,
            unexpected: 0,
            silent_epoch_changes: 0,
            stale: 0,
            never_started: 0,
            announcements: 0,
            spurious_announcements: 0,
            announce_latency: h(),
            calm_latency: h(),
        }
    }
}

/// Latency figures in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// What the checker found for one transport.
#[derive(Clone, Debug, Serialize)]
pub struct TransportFindings {
    /// Transport.
    pub transport: Transport,
    /// Streams (subscriber × channel) checked.
    pub streams: u64,
    /// Deliveries received and checked.
    pub deliveries: u64,
    /// Acknowledged publications inside the streams' covered ranges (what had to arrive).
    pub expected: u64,
    /// Acknowledged, inside a covered range, never delivered.
    pub lost: u64,
    /// Delivered twice to one stream.
    pub duplicated: u64,
    /// Delivered after a higher offset.
    pub reordered: u64,
    /// Forward jumps within an epoch without an announcement.
    pub gaps: u64,
    /// Deliveries whose data does not match what was published there.
    pub unexpected: u64,
    /// Deliveries in a new epoch without an announcement.
    pub silent_epoch_changes: u64,
    /// Streams left in an old epoch at the end.
    pub stale: u64,
    /// Streams that never subscribed.
    pub never_started: u64,
    /// Announced discontinuities that changed the epoch.
    pub announcements: u64,
    /// Announced discontinuities that kept the epoch.
    pub spurious_announcements: u64,
    /// From the last fault to each epoch-changing announcement.
    pub fault_to_announcement: Latency,
    /// Publish-to-delivery latency of publications sent and delivered in calm periods.
    pub calm_latency: Latency,
}

impl TransportFindings {
    /// Violations among these findings.
    pub fn violations(&self) -> u64 {
        self.lost
            + self.duplicated
            + self.reordered
            + self.gaps
            + self.unexpected
            + self.silent_epoch_changes
            + self.stale
            + self.never_started
            + self.spurious_announcements
    }
}

/// Everything the checker found.
#[derive(Clone, Debug, Serialize)]
pub struct Findings {
    /// Per transport.
    pub transports: Vec<TransportFindings>,
    /// Publications acknowledged.
    pub acknowledged: u64,
    /// Publications attempted (acknowledged or not).
    pub attempted: u64,
    /// Publications found at two positions of one epoch.
    pub stored_twice: u64,
    /// Two different publications acknowledged at one position.
    pub conflicting_acks: u64,
    /// New epochs in acknowledgements beyond the number of Redis wipes.
    pub unexplained_epoch_changes: u64,
    /// Redis wipes (data-losing restarts) reported to the checker.
    pub wipes: u64,
    /// Largest number of epochs any channel went through.
    pub max_epochs_per_channel: usize,
    /// A few violations, described.
    pub examples: Vec<String>,
}

impl Findings {
    /// Total violations.
    pub fn violations(&self) -> u64 {
        self.transports
            .iter()
            .map(TransportFindings::violations)
            .sum::<u64>()
            + self.stored_twice
            + self.conflicting_acks
            + self.unexplained_epoch_changes
    }
}

const MAX_EXAMPLES: usize = 40;

/// See the module docs.
pub struct Checker {
    channels: Vec<ChannelState>,
    epoch_ids: HashMap<String, u32>,
    epoch_names: Vec<String>,
    /// Per publisher, the channel of each attempted sequence number.
    attempts: Vec<Vec<u16>>,
    streams: HashMap<StreamId, Stream>,
    per: [Counters; 3],
    last_fault_at: Option<u64>,
    wipes: u64,
    acknowledged: u64,
    conflicting_acks: u64,
    unexplained_epoch_changes: u64,
    examples: Vec<String>,
}

impl Checker {
    /// A checker for `channels` channels.
    pub fn new(channels: usize) -> Self {
        Self {
            channels: (0..channels).map(|_| ChannelState::default()).collect(),
            epoch_ids: HashMap::new(),
            epoch_names: Vec::new(),
            attempts: Vec::new(),
            streams: HashMap::new(),
            per: [Counters::new(), Counters::new(), Counters::new()],
            last_fault_at: None,
            wipes: 0,
            acknowledged: 0,
            conflicting_acks: 0,
            unexplained_epoch_changes: 0,
            examples: Vec::new(),
        }
    }

    fn intern(&mut self, epoch: &str) -> u32 {
        if let Some(&e) = self.epoch_ids.get(epoch) {
            return e;
        }
        let e = self.epoch_names.len() as u32;
        self.epoch_names.push(epoch.to_owned());
        self.epoch_ids.insert(epoch.to_owned(), e);
        e
    }

    fn example(&mut self, text: impl FnOnce() -> String) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(text());
        }
    }

    fn channel(&mut self, channel: u16) -> &mut ChannelState {
        let i = usize::from(channel);
        if self.channels.len() <= i {
            self.channels.resize_with(i + 1, ChannelState::default);
        }
        &mut self.channels[i]
    }

    /// A fault began at `at`; `wipe` when it loses Redis data (new epochs are expected).
    pub fn fault(&mut self, at: u64, wipe: bool) {
        self.last_fault_at = Some(at);
        if wipe {
            self.wipes += 1;
        }
    }

    /// A publisher is about to send `id` to `channel` (sequence numbers in order, from 0).
    pub fn attempted(&mut self, id: PubId, channel: u16) {
        let p = id.publisher as usize;
        if self.attempts.len() <= p {
            self.attempts.resize_with(p + 1, Vec::new);
        }
        let list = &mut self.attempts[p];
        let i = id.seq as usize;
        if list.len() <= i {
            list.resize(i + 1, NOT_ATTEMPTED);
        }
        list[i] = channel;
    }

    fn was_attempted(&self, id: PubId, channel: u16) -> bool {
        self.attempts
            .get(id.publisher as usize)
            .and_then(|l| l.get(id.seq as usize))
            == Some(&channel)
    }

    /// The server acknowledged `id` at `offset` of `epoch` in `channel`, at `at_us`.
    pub fn acked(&mut self, id: PubId, channel: u16, epoch: &str, offset: u64, at_us: u64) {
        let e = self.intern(epoch);
        let wipes = self.wipes;
        let ch = self.channel(channel);
        let mut unexplained = false;
        if !ch.epochs.contains(&e) {
            if ch.epochs.len() as u64 > wipes {
                unexplained = true;
            }
            ch.epochs.push(e);
        }
        let t = ch.tables.entry(e).or_default();
        t.grow(offset);
        let prev = t.acked[offset as usize];
        t.acked[offset as usize] = id.pack();
        t.ack_ms[offset as usize] = (at_us / 1000).min(u64::from(u32::MAX)) as u32;
        t.max_acked = t.max_acked.max(offset);
        self.acknowledged += 1;
        if unexplained {
            self.unexplained_epoch_changes += 1;
            self.example(|| {
                format!("unexplained epoch change: ch{channel} acknowledged {id} in new epoch {epoch} (wipes so far: {wipes})")
            });
        }
        if prev != EMPTY && prev != id.pack() {
            self.conflicting_acks += 1;
            self.example(|| {
                format!(
                    "conflicting acks: ch{channel} {epoch}:{offset} acknowledged for {} and {id}",
                    PubId::unpack(prev).map_or("?".into(), |p| p.to_string())
                )
            });
        }
    }

    /// A subscriber task for `stream` exists (streams that never start are reported).
    pub fn register(&mut self, stream: StreamId, transport: Transport) {
        self.stream_mut(stream, transport);
    }

    fn stream_mut(&mut self, stream: StreamId, transport: Transport) -> &mut Stream {
        self.streams.entry(stream).or_insert_with(|| Stream {
            transport,
            segments: Vec::new(),
            delivered: HashMap::new(),
        })
    }

    /// `stream` subscribed without a position and stands at `offset` of `epoch`.
    pub fn started(&mut self, stream: StreamId, transport: Transport, epoch: &str, offset: u64) {
        let e = self.intern(epoch);
        let st = self.stream_mut(stream, transport);
        if st.segments.is_empty() {
            st.segments.push(Segment {
                epoch: e,
                base: offset,
                last: offset,
                end: End::Open,
            });
        } else {
            // The subscriber lost its own position: the same as an announced restart.
            self.announced(stream, transport, epoch, offset, None);
        }
    }

    /// The server told `stream` it could not be resumed; it now stands at `offset` of
    /// `epoch`. `at` (when known) measures the time since the last fault.
    pub fn announced(
        &mut self,
        stream: StreamId,
        transport: Transport,
        epoch: &str,
        offset: u64,
        at: Option<u64>,
    ) {
        let e = self.intern(epoch);
        let last_fault = self.last_fault_at;
        let st = self.stream_mut(stream, transport);
        let t = st.transport.index();
        let new = Segment {
            epoch: e,
            base: offset,
            last: offset,
            end: End::Open,
        };
        let Some(prev) = st.segments.last_mut() else {
            st.segments.push(new);
            return;
        };
        prev.end = End::Announced;
        let (prev_epoch, prev_last) = (prev.epoch, prev.last);
        st.segments.push(new);
        if prev_epoch == e {
            self.per[t].spurious_announcements += 1;
            self.example(|| {
                format!("spurious announcement: {stream} ({}) told it cannot resume at {prev_last} of unchanged epoch {epoch}, moved to {offset}", transport.name())
            });
        } else {
            let c = &mut self.per[t];
            c.announcements += 1;
            if let (Some(at), Some(f)) = (at, last_fault) {
                let _ = c.announce_latency.record(at.saturating_sub(f).max(1));
            }
        }
    }

    /// `stream` received the publication at `offset` of `epoch`; `data` is what it carried
    /// (`None`: unreadable). `calm_latency_us`: publish-to-delivery time when both happened in
    /// a calm period. `seen` only goes into descriptions.
    pub fn delivered(
        &mut self,
        stream: StreamId,
        epoch: &str,
        offset: u64,
        data: Option<PubId>,
        calm_latency_us: Option<u64>,
        seen: Seen,
    ) {
        let e = self.intern(epoch);
        let Some(st) = self.streams.get(&stream) else {
            return self.before_start(stream, Transport::Ws, epoch, offset);
        };
        let transport = st.transport;
        if st.segments.is_empty() {
            return self.before_start(stream, transport, epoch, offset);
        }
        let t = transport.index();
        self.per[t].deliveries += 1;
        self.check_content(stream.channel, e, offset, data, transport);
        let Some(st) = self.streams.get_mut(&stream) else {
            return; // present: checked above
        };
        let mut events: Vec<&'static str> = Vec::new();
        // A delivery in another epoch than the segment's, with no announcement in between.
        let silent_from = match st.segments.last_mut() {
            Some(seg) if seg.epoch != e => {
                seg.end = End::Silent;
                Some((seg.epoch, seg.last))
            }
            _ => None,
        };
        if silent_from.is_some() {
            st.segments.push(Segment {
                epoch: e,
                base: 0,
                last: 0,
                end: End::Open,
            });
        }
        let Some(seg) = st.segments.last_mut() else {
            return; // non-empty: checked above
        };
        let set = st.delivered.entry(e).or_default();
        let last = seg.last;
        if !set.insert(offset) {
            self.per[t].duplicated += 1;
            events.push("duplicated");
        } else if offset <= last {
            self.per[t].reordered += 1;
            events.push("reordered");
        } else {
            if offset > last + 1 {
                self.per[t].gaps += 1;
                events.push("gap");
            }
            seg.last = offset;
            if let Some(us) = calm_latency_us {
                let _ = self.per[t].calm_latency.record(us.max(1));
            }
        }
        if let Some((old_epoch, old_last)) = silent_from {
            self.per[t].silent_epoch_changes += 1;
            let old = self.epoch_names[old_epoch as usize].clone();
            self.example(|| {
                format!("silent epoch change: {stream} ({}) went from {old}:{old_last} to {epoch}:{offset} without an announcement, {seen}", transport.name())
            });
        }
        for ev in events {
            self.example(|| {
                format!(
                    "{ev}: {stream} ({}) received {epoch}:{offset} after {last}, {seen}",
                    transport.name()
                )
            });
        }
    }

    fn before_start(&mut self, stream: StreamId, transport: Transport, epoch: &str, offset: u64) {
        self.per[transport.index()].unexpected += 1;
        self.example(|| {
            format!(
                "unexpected: {stream} ({}) received {epoch}:{offset} before it subscribed",
                transport.name()
            )
        });
    }

    fn check_content(
        &mut self,
        channel: u16,
        e: u32,
        offset: u64,
        data: Option<PubId>,
        transport: Transport,
    ) {
        let v = data.map_or(UNREADABLE, PubId::pack);
        let t = self.channel(channel).tables.entry(e).or_default();
        t.grow(offset);
        let i = offset as usize;
        let first = t.seen[i];
        if first == EMPTY {
            t.seen[i] = v;
            t.seen_by[i] = transport.index() as u8;
        } else if first != v {
            self.per[transport.index()].unexpected += 1;
            let epoch = self.epoch_names[e as usize].clone();
            self.example(|| {
                format!("unexpected: ch{channel} {epoch}:{offset} delivered as {data:?} over {}, earlier as {:?}", transport.name(), PubId::unpack(first))
            });
        }
    }

    /// Where `stream` stands: `(epoch, last offset)` of its current segment.
    pub fn position(&self, stream: StreamId) -> Option<(&str, u64)> {
        let seg = self.streams.get(&stream)?.segments.last()?;
        Some((self.epoch_names[seg.epoch as usize].as_str(), seg.last))
    }

    /// Streams that have not yet reached their channel's last acknowledged publication (in
    /// its newest epoch), with a few of them described.
    pub fn pending(&self) -> (usize, Vec<String>) {
        let mut n = 0;
        let mut some = Vec::new();
        for (id, st) in &self.streams {
            let ch = &self.channels[usize::from(id.channel)];
            let done = match (st.segments.last(), ch.newest()) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(seg), Some(newest)) => {
                    seg.epoch == newest && seg.last >= ch.max_acked(newest)
                }
            };
            if !done {
                n += 1;
                if some.len() < 5 {
                    let at = st
                        .segments
                        .last()
                        .map(|s| format!("{}:{}", self.epoch_names[s.epoch as usize], s.last));
                    let want = ch
                        .newest()
                        .map(|e| format!("{}:{}", self.epoch_names[e as usize], ch.max_acked(e)));
                    some.push(format!(
                        "{id} ({}) at {at:?}, newest {want:?}",
                        st.transport.name()
                    ));
                }
            }
        }
        (n, some)
    }

    /// Classifies everything (see the module docs).
    pub fn finish(mut self) -> Findings {
        let stored_twice = self.check_positions();
        let mut ids: Vec<StreamId> = self.streams.keys().copied().collect();
        ids.sort();
        for id in ids {
            self.check_stream(id);
        }
        let transports = Transport::ALL
            .iter()
            .map(|&t| {
                let c = &self.per[t.index()];
                TransportFindings {
                    transport: t,
                    streams: c.streams,
                    deliveries: c.deliveries,
                    expected: c.expected,
                    lost: c.lost,
                    duplicated: c.duplicated,
                    reordered: c.reordered,
                    gaps: c.gaps,
                    unexpected: c.unexpected,
                    silent_epoch_changes: c.silent_epoch_changes,
                    stale: c.stale,
                    never_started: c.never_started,
                    announcements: c.announcements,
                    spurious_announcements: c.spurious_announcements,
                    fault_to_announcement: Latency::of(&c.announce_latency),
                    calm_latency: Latency::of(&c.calm_latency),
                }
            })
            .collect();
        Findings {
            transports,
            acknowledged: self.acknowledged,
            attempted: self
                .attempts
                .iter()
                .flatten()
                .filter(|&&c| c != NOT_ATTEMPTED)
                .count() as u64,
            stored_twice,
            conflicting_acks: self.conflicting_acks,
            unexplained_epoch_changes: self.unexplained_epoch_changes,
            wipes: self.wipes,
            max_epochs_per_channel: self
                .channels
                .iter()
                .map(|c| c.epochs.len())
                .max()
                .unwrap_or(0),
            examples: self.examples,
        }
    }

    /// Content of every delivered position against the acknowledgements and attempts;
    /// returns how many publications were stored twice in one epoch.
    fn check_positions(&mut self) -> u64 {
        let mut stored_twice = 0;
        let mut bad = Vec::new();
        for (ci, ch) in self.channels.iter().enumerate() {
            let ci = ci as u16;
            for (&e, t) in &ch.tables {
                let mut where_seen: HashMap<u64, u64> = HashMap::new();
                for (o, &v) in t.seen.iter().enumerate() {
                    if v == EMPTY {
                        continue;
                    }
                    let o = o as u64;
                    let by = t.seen_by[o as usize] as usize;
                    let acked = t.acked_at(o);
                    let why = match PubId::unpack(v) {
                        None => Some("unreadable data".to_owned()),
                        Some(id) if acked != EMPTY && acked != v => Some(format!(
                            "{id} where {} was acknowledged",
                            PubId::unpack(acked).map_or("?".into(), |p| p.to_string())
                        )),
                        Some(id) if !self.was_attempted(id, ci) => {
                            Some(format!("{id}, never attempted on this channel"))
                        }
                        Some(_) => None,
                    };
                    if let Some(why) = why {
                        bad.push((by, format!("unexpected: ch{ci} epoch#{e}:{o} holds {why}")));
                    }
                    if let Some(prev) = where_seen.insert(v, o) {
                        stored_twice += 1;
                        bad.push((
                            by,
                            format!(
                                "stored twice: ch{ci} epoch#{e} holds {:?} at {prev} and {o}",
                                PubId::unpack(v)
                            ),
                        ));
                    }
                }
            }
        }
        for (by, text) in bad {
            if !text.starts_with("stored twice") {
                self.per[by.min(2)].unexpected += 1;
            }
            self.example(|| text);
        }
        stored_twice
    }

    fn check_stream(&mut self, id: StreamId) {
        let st = self.streams.get(&id).expect("listed");
        let t = st.transport.index();
        let ch = &self.channels[usize::from(id.channel)];
        let mut found = Counters::new();
        found.streams = 1;
        let mut examples = Vec::new();
        let name = st.transport.name();
        let Some(last_seg) = st.segments.last() else {
            self.per[t].streams += 1;
            self.per[t].never_started += 1;
            self.example(|| format!("never subscribed: {id} ({name})"));
            return;
        };
        let newest = ch.newest();
        let mut spans: HashMap<u32, Ranges> = HashMap::new();
        let n = st.segments.len();
        for (i, seg) in st.segments.iter().enumerate() {
            let end = match seg.end {
                End::Announced => seg.last,
                End::Silent => seg.last.max(ch.max_acked(seg.epoch)),
                End::Open if i + 1 == n => seg.last.max(ch.max_acked(seg.epoch)),
                End::Open => seg.last,
            };
            spans
                .entry(seg.epoch)
                .or_default()
                .insert_range(seg.base + 1, end);
        }
        if let Some(newest) = newest
            && last_seg.epoch != newest
        {
            found.stale = 1;
            examples.push(format!(
                "stale: {id} ({}) ended in epoch {} at {}, the channel is in {} up to {}",
                st.transport.name(),
                self.epoch_names[last_seg.epoch as usize],
                last_seg.last,
                self.epoch_names[newest as usize],
                ch.max_acked(newest)
            ));
            spans
                .entry(newest)
                .or_default()
                .insert_range(1, ch.max_acked(newest));
        }
        let empty = Ranges::new();
        for (e, span) in &spans {
            let Some(table) = ch.tables.get(e) else {
                continue;
            };
            let got = st.delivered.get(e).unwrap_or(&empty);
            for &(lo, hi) in span.ranges() {
                for o in lo..=hi.min((table.acked.len() as u64).saturating_sub(1)) {
                    let a = table.acked_at(o);
                    if a == EMPTY {
                        continue;
                    }
                    found.expected += 1;
                    if !got.contains(o) {
                        found.lost += 1;
                        if examples.len() < 3 {
                            examples.push(format!(
                                "lost: {id} ({}) never received {}:{o} ({}), acknowledged at {:.3} s",
                                st.transport.name(),
                                self.epoch_names[*e as usize],
                                PubId::unpack(a).map_or("?".into(), |p| p.to_string()),
                                f64::from(table.ack_ms[o as usize]) / 1e3
                            ));
                        }
                    }
                }
            }
        }
        let c = &mut self.per[t];
        c.streams += 1;
        c.expected += found.expected;
        c.lost += found.lost;
        c.stale += found.stale;
        for e in examples {
            self.example(|| e);
        }
    }
}

#[cfg(test)]
mod tests;
