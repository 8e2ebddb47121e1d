//! The hub: this node's index of channels and their local subscribers, and the fan-out path.
//!
//! Channels live in hash-sharded maps; each channel has its own lock, held while a publication
//! is queued to its subscribers (queueing is a non-blocking push, so the lock is short and no
//! lock is ever held across `.await`). Engine interest (first subscriber → `Engine::subscribe`,
//! last one out → `Engine::unsubscribe`) is serialized per channel by a striped async lock.
//!
//! The hub also guards continuity: it remembers the last position it delivered per channel and,
//! on an offset jump (a lost broker message) or after an engine reconnect, re-reads history to
//! fill the gap; when it cannot, it disconnects the channel's subscribers with 4003 so they
//! resubscribe and learn `recovered: false`. Never a silent gap.
//!
//! Each slot also remembers the last offset it holds (from its recovery or pushed since), and a
//! publication goes to a slot only when it is newer than that. So a publication that reaches the
//! hub again (a resync overlapping what was delivered) is sent to nobody twice, and one at or
//! below the channel's last position is still sent to the slots that lack it: a subscriber
//! that read history before it was published, while another subscriber's later read already
//! moved the channel's position past it and the broker had yet to deliver it. Resyncs start
//! from the lowest position an active slot holds, so they fill every slot's gap.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use switchboard_protocol::push::{encode_join_leave, encode_pub};
use switchboard_protocol::{ClientInfo, Disconnect, Publication, StreamPosition};

use crate::engine::{Control, Engine, EngineError, EventSink, HistoryQuery};
use crate::handle::SessionHandle;
use crate::outbox::{EventKind, Outbound, PubItem};
use crate::registry::Registry;

const SHARDS: usize = 128;
const INTEREST_STRIPES: usize = 64;
/// Publications buffered for a subscriber while its recovery is read; beyond this it is cut off
/// as a slow consumer rather than buffering without bound.
const MAX_RECOVERY_BUFFER: usize = 10_000;
/// Publications held for a channel while a gap is filled from history. Beyond this the
/// channel's subscribers are cut off with 4003 (they resubscribe from their position) and
/// further publications are dropped until the history read returns, instead of buffering
/// without bound while the engine is slow.
const MAX_RESYNC_BUFFER: usize = 10_000;
/// Retries of a resync's history read while the engine is unavailable (about 3 s in all).
const RESYNC_RETRIES: u32 = 6;

struct Slot {
    session: Arc<SessionHandle>,
    /// `Some` while the subscriber's recovery is being read.
    buffer: Option<Vec<Arc<PubItem>>>,
    /// The subscriber holds every publication up to this offset (its recovery, then what was
    /// pushed to it); only newer ones are sent.
    after: u64,
}

#[derive(Default)]
struct ChannelState {
    slots: Vec<Slot>,
    index: HashMap<u64, usize>,
    /// Last position delivered to subscribers.
    last: Option<(u64, Arc<str>)>,
    /// `Some` while a gap is being filled from history: publications wait here.
    resync: Option<Vec<(Arc<str>, Publication)>>,
    /// The resync buffer overflowed: its subscribers were cut off; anyone who subscribes
    /// before the history read returns is cut off then too.
    resync_overflowed: bool,
    engine_subscribed: bool,
}

/// One channel with local subscribers.
pub struct ChannelEntry {
    name: Arc<str>,
    state: Mutex<ChannelState>,
}

impl ChannelEntry {
    /// The channel's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }
}

/// The hub. See the module docs.
pub struct Hub {
    shards: Vec<Mutex<HashMap<Arc<str>, Arc<ChannelEntry>>>>,
    interest: Vec<tokio::sync::Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
    engine: OnceLock<Weak<dyn Engine>>,
    registry: Arc<Registry>,
    me: OnceLock<Weak<Hub>>,
}

impl Hub {
    pub(crate) fn new(registry: Arc<Registry>) -> Arc<Self> {
        let hub = Arc::new(Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            interest: (0..INTEREST_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: Default::default(),
            engine: OnceLock::new(),
            registry,
            me: OnceLock::new(),
        });
        let _ = hub.me.set(Arc::downgrade(&hub));
        hub
    }

    pub(crate) fn set_engine(&self, engine: &Arc<dyn Engine>) {
        let _ = self.engine.set(Arc::downgrade(engine));
    }

    fn engine(&self) -> Option<Arc<dyn Engine>> {
        self.engine.get().and_then(Weak::upgrade)
    }

    fn hash(&self, channel: &str) -> usize {
        self.hasher.hash_one(channel) as usize
    }

    fn shard(&self, channel: &str) -> &Mutex<HashMap<Arc<str>, Arc<ChannelEntry>>> {
        &self.shards[self.hash(channel) % SHARDS]
    }

    fn entry(&self, channel: &str) -> Option<Arc<ChannelEntry>> {
        self.shard(channel).lock().get(channel).cloned()
    }

    /// Registers `session` on `channel` in buffering mode: live publications are held back until
    /// [`Hub::activate`]. Subscribes the node to the channel in the engine if it is the first
    /// local subscriber.
    ///
    /// # Errors
    /// The engine could not subscribe; nothing was registered.
    pub async fn subscribe(
        &self,
        session: &Arc<SessionHandle>,
        channel: &str,
    ) -> Result<Arc<ChannelEntry>, EngineError> {
        let _interest = self.interest[self.hash(channel) % INTEREST_STRIPES]
            .lock()
            .await;
        let entry = {
            let mut shard = self.shard(channel).lock();
            match shard.get(channel) {
                Some(e) => e.clone(),
                None => {
                    let name: Arc<str> = channel.into();
                    let e = Arc::new(ChannelEntry {
                        name: name.clone(),
                        state: Mutex::new(ChannelState::default()),
                    });
                    shard.insert(name, e.clone());
                    crate::metrics::channels(1.0);
                    e
                }
            }
        };
        let needs_engine = !entry.state.lock().engine_subscribed;
        if needs_engine {
            let engine = self
                .engine()
                .ok_or_else(|| EngineError::Unavailable("node stopped".into()))?;
            if let Err(e) = engine.subscribe(channel).await {
                crate::metrics::engine_error("subscribe");
                self.remove_if_empty(&entry);
                return Err(e);
            }
            entry.state.lock().engine_subscribed = true;
        }
        let mut st = entry.state.lock();
        let idx = st.slots.len();
        st.slots.push(Slot {
            session: session.clone(),
            buffer: Some(Vec::new()),
            after: 0,
        });
        st.index.insert(session.sid, idx);
        drop(st);
        crate::metrics::subscriptions(1.0);
        Ok(entry)
    }

    /// Ends buffering for `session` on `entry`: queues `head` (the subscribe reply, or the
    /// recovered publications for streaming transports), then the buffered publications newer
    /// than `position`, then live ones. Atomic with respect to fan-out.
    pub fn activate(
        &self,
        entry: &ChannelEntry,
        session: &SessionHandle,
        position: &StreamPosition,
        head: Vec<Outbound>,
    ) {
        let mut st = entry.state.lock();
        let Some(&idx) = st.index.get(&session.sid) else {
            return;
        };
        for item in head {
            session.outbox.push(item);
        }
        let mut buffered = st.slots[idx].buffer.take().unwrap_or_default();
        // In offset order, each once (a publication may have reached the hub twice).
        buffered.sort_by_key(|item| item.offset);
        let mut after = position.offset;
        for item in buffered {
            if item.offset > after {
                if *item.epoch != *position.epoch {
                    session.outbox.close(Disconnect::INSUFFICIENT_STATE);
                    return;
                }
                after = item.offset;
                session.outbox.push(Outbound::Pub(item));
            }
        }
        st.slots[idx].after = after;
        if st.last.is_none() && st.resync.is_none() {
            st.last = Some((position.offset, position.epoch.as_str().into()));
        }
    }

    /// Removes `session`'s slot from `channel` at once (no IO), if it has one.
    /// [`Hub::unsubscribe`] finishes the job (engine interest).
    pub(crate) fn remove_slot(&self, session: &SessionHandle, channel: &str) {
        let Some(entry) = self.entry(channel) else {
            return;
        };
        let mut st = entry.state.lock();
        let Some(idx) = st.index.remove(&session.sid) else {
            return;
        };
        st.slots.swap_remove(idx);
        if let Some(moved) = st.slots.get(idx) {
            let sid = moved.session.sid;
            st.index.insert(sid, idx);
        }
        crate::metrics::subscriptions(-1.0);
    }

    /// Removes `session` from `channel` (if still there); unsubscribes the node in the engine
    /// when the channel has no local subscriber left.
    pub async fn unsubscribe(&self, session: &SessionHandle, channel: &str) {
        self.remove_slot(session, channel);
        let Some(entry) = self.entry(channel) else {
            return;
        };
        if !entry.state.lock().slots.is_empty() {
            return;
        }
        let _interest = self.interest[self.hash(channel) % INTEREST_STRIPES]
            .lock()
            .await;
        if self.remove_if_empty(&entry)
            && let Some(engine) = self.engine()
            && engine.unsubscribe(channel).await.is_err()
        {
            crate::metrics::engine_error("unsubscribe");
        }
    }

    /// Removes the entry if it has no subscribers; returns whether the engine should be told.
    fn remove_if_empty(&self, entry: &Arc<ChannelEntry>) -> bool {
        let mut shard = self.shard(&entry.name).lock();
        let mut st = entry.state.lock();
        if !st.slots.is_empty() {
            return false;
        }
        if shard
            .get(&*entry.name)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            shard.remove(&*entry.name);
            crate::metrics::channels(-1.0);
        }
        std::mem::take(&mut st.engine_subscribed)
    }

    /// Active channels with their local subscriber counts, optionally filtered by a pattern.
    pub fn channels(&self, pattern: Option<&str>) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            for (name, e) in shard.lock().iter() {
                if pattern.is_none_or(|p| switchboard_protocol::channel::pattern_matches(p, name)) {
                    out.push((name.to_string(), e.state.lock().slots.len()));
                }
            }
        }
        out.sort();
        out
    }

    /// Presence entries of local subscribers on channels where `include` says presence is on.
    pub(crate) fn presence_snapshot(
        &self,
        include: impl Fn(&str) -> bool,
    ) -> Vec<(Arc<str>, Vec<ClientInfo>)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let entries: Vec<Arc<ChannelEntry>> = shard.lock().values().cloned().collect();
            for e in entries {
                if include(&e.name) {
                    let infos = e
                        .state
                        .lock()
                        .slots
                        .iter()
                        .map(|s| (*s.session.info()).clone())
                        .collect();
                    out.push((e.name.clone(), infos));
                }
            }
        }
        out
    }

    fn fan_out(st: &mut ChannelState, item: &Arc<PubItem>) {
        let mut n = 0;
        for slot in &mut st.slots {
            match &mut slot.buffer {
                Some(buf) => {
                    if buf.len() >= MAX_RECOVERY_BUFFER {
                        slot.session.outbox.close(Disconnect::SLOW);
                    } else {
                        buf.push(item.clone());
                    }
                }
                None if item.offset > slot.after => {
                    slot.after = item.offset;
                    if slot.session.outbox.push(Outbound::Pub(item.clone())) {
                        n += 1;
                    }
                }
                None => {}
            }
        }
        crate::metrics::delivered(n);
    }

    /// The lowest offset an active, open slot holds (at most `last`): where a resync must
    /// start so that every slot's gap is filled.
    fn low_water(st: &ChannelState, last: u64) -> u64 {
        st.slots
            .iter()
            .filter(|s| s.buffer.is_none() && s.session.outbox.closed().is_none())
            .map(|s| s.after)
            .fold(last, u64::min)
    }

    fn close_all(st: &ChannelState, reason: Disconnect) {
        for slot in &st.slots {
            slot.session.outbox.close(reason.clone());
        }
    }

    /// Encodes a publication once for every transport.
    pub fn item(name: &Arc<str>, epoch: &Arc<str>, p: &Publication) -> Arc<PubItem> {
        Arc::new(PubItem {
            channel: name.clone(),
            offset: p.offset,
            epoch: epoch.clone(),
            json: encode_pub(name, p),
            framed: OnceLock::new(),
            framed_compressed: OnceLock::new(),
        })
    }

    /// Delivers publications in order, checking continuity against `st.last`. Returns the
    /// position to resync from when a gap shows up (the rest is buffered).
    fn deliver(
        st: &mut ChannelState,
        name: &Arc<str>,
        pubs: impl IntoIterator<Item = (Arc<str>, Publication)>,
    ) -> Option<StreamPosition> {
        let mut pubs = pubs.into_iter();
        while let Some((epoch, p)) = pubs.next() {
            if let Some(buf) = &mut st.resync {
                if st.resync_overflowed {
                    continue;
                }
                if buf.len() < MAX_RESYNC_BUFFER {
                    buf.push((epoch, p));
                    continue;
                }
                *buf = Vec::new();
                st.resync_overflowed = true;
                crate::metrics::gap("overflow");
                Self::close_all(st, Disconnect::INSUFFICIENT_STATE);
                continue;
            }
            match &st.last {
                Some((last, e)) if **e == *epoch => {
                    if p.offset <= *last {
                        // A resync overlap, or a publication still on its way from the broker
                        // when a subscriber's recovery moved `last` past it: the slots that
                        // hold it skip it, one that read history before it needs it.
                        let item = Self::item(name, &epoch, &p);
                        Self::fan_out(st, &item);
                        continue;
                    }
                    if p.offset > last + 1 {
                        let from = StreamPosition::new(Self::low_water(st, *last), e.to_string());
                        let mut buf = vec![(epoch, p)];
                        buf.extend(pubs);
                        st.resync = Some(buf);
                        crate::metrics::gap("detected");
                        return Some(from);
                    }
                }
                Some(_) => {
                    // The stream's epoch changed: subscribers' positions mean nothing now.
                    Self::close_all(st, Disconnect::INSUFFICIENT_STATE);
                    crate::metrics::gap("epoch_changed");
                }
                None => {}
            }
            st.last = Some((p.offset, epoch.clone()));
            let item = Self::item(name, &epoch, &p);
            Self::fan_out(st, &item);
        }
        None
    }

    fn start_resync(&self, entry: Arc<ChannelEntry>, from: StreamPosition) {
        let (Some(engine), Some(me)) = (self.engine(), self.me.get().and_then(Weak::upgrade))
        else {
            return;
        };
        tokio::spawn(async move {
            let q = HistoryQuery {
                since: Some(from.clone()),
                limit: usize::MAX,
                reverse: false,
            };
            // A backend blip is not data loss: retry for a few seconds (publications keep
            // buffering meanwhile) before telling subscribers their state is gone.
            let mut result = engine.history(&entry.name, &q).await;
            for attempt in 0..RESYNC_RETRIES {
                if !matches!(result, Err(EngineError::Unavailable(_))) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt.min(4))).await;
                result = engine.history(&entry.name, &q).await;
            }
            let mut st = entry.state.lock();
            let buffered = st.resync.take().unwrap_or_default();
            if std::mem::take(&mut st.resync_overflowed) {
                // Whoever subscribed meanwhile never got a continuous stream either.
                Self::close_all(&st, Disconnect::INSUFFICIENT_STATE);
                st.last = None;
                return;
            }
            match result {
                Ok(page) => {
                    crate::metrics::gap("recovered");
                    let epoch: Arc<str> = page.position.epoch.as_str().into();
                    let recovered = page.publications.into_iter().map(|p| (epoch.clone(), p));
                    let again = Self::deliver(&mut st, &entry.name, recovered.chain(buffered));
                    drop(st);
                    if let Some(from) = again {
                        me.start_resync(entry, from);
                    }
                }
                Err(_) => {
                    crate::metrics::gap("unrecoverable");
                    Self::close_all(&st, Disconnect::INSUFFICIENT_STATE);
                    st.last = None;
                }
            }
        });
    }

    fn all_entries(&self) -> Vec<Arc<ChannelEntry>> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }
}

impl EventSink for Hub {
    fn publication(&self, channel: &str, epoch: &str, publication: Publication) {
        let Some(entry) = self.entry(channel) else {
            return;
        };
        let resync_from = {
            let mut st = entry.state.lock();
            let epoch: Arc<str> = match &st.last {
                Some((_, e)) if **e == *epoch => e.clone(),
                _ => epoch.into(),
            };
            Self::deliver(&mut st, &entry.name, std::iter::once((epoch, publication)))
        };
        if let Some(from) = resync_from {
            self.start_resync(entry, from);
        }
    }

    fn join_leave(&self, channel: &str, join: bool, client: ClientInfo) {
        let Some(entry) = self.entry(channel) else {
            return;
        };
        let bytes = encode_join_leave(join, channel, &client);
        let kind = if join {
            EventKind::Join
        } else {
            EventKind::Leave
        };
        let st = entry.state.lock();
        for slot in st.slots.iter().filter(|s| s.buffer.is_none()) {
            slot.session
                .outbox
                .push(Outbound::Event(kind, bytes.clone()));
        }
    }

    fn control(&self, control: Control) {
        match control {
            Control::DisconnectUser { user, reconnect } => {
                let reason = if reconnect {
                    Disconnect::FORCE_RECONNECT
                } else {
                    Disconnect::FORBIDDEN
                };
                self.registry.disconnect_user(&user, reason);
            }
        }
    }

    fn reconnected(&self) {
        for entry in self.all_entries() {
            let from = {
                let mut st = entry.state.lock();
                if st.resync.is_some() {
                    continue;
                }
                match &st.last {
                    Some((o, e)) => {
                        let from = StreamPosition::new(Self::low_water(&st, *o), e.to_string());
                        st.resync = Some(Vec::new());
                        from
                    }
                    None => continue,
                }
            };
            self.start_resync(entry, from);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::capabilities::Capabilities;
    use crate::engine::memory::MemoryEngine;

    fn publication(offset: u64) -> Publication {
        Publication {
            offset,
            data: Bytes::from_static(b"1"),
            info: None,
        }
    }

    #[tokio::test]
    async fn a_resync_buffer_overflow_cuts_subscribers_off_instead_of_growing() {
        let hub = Hub::new(Arc::new(Registry::default()));
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        hub.set_engine(&engine);
        let s = Arc::new(SessionHandle::new(
            1,
            "s1".into(),
            Capabilities::SSE,
            1 << 30,
        ));
        let entry = hub.subscribe(&s, "c").await.unwrap();
        hub.activate(&entry, &s, &StreamPosition::new(0, "e"), Vec::new());
        // Without an engine the history read that would fill the gap never starts: the buffer
        // can only grow.
        drop(engine);
        hub.publication("c", "e", publication(1));
        hub.publication("c", "e", publication(3)); // a gap: buffering starts with this one
        for o in 4..3 + MAX_RESYNC_BUFFER as u64 {
            hub.publication("c", "e", publication(o));
        }
        assert_eq!(s.outbox.closed(), None, "within the bound");
        assert_eq!(
            entry.state.lock().resync.as_ref().map(Vec::len),
            Some(MAX_RESYNC_BUFFER)
        );
        hub.publication("c", "e", publication(3 + MAX_RESYNC_BUFFER as u64));
        assert_eq!(s.outbox.closed(), Some(Disconnect::INSUFFICIENT_STATE));
        hub.publication("c", "e", publication(4 + MAX_RESYNC_BUFFER as u64));
        let st = entry.state.lock();
        assert!(st.resync_overflowed);
        assert_eq!(
            st.resync.as_ref().map(Vec::len),
            Some(0),
            "nothing more is held"
        );
    }
    fn session(sid: u64) -> Arc<SessionHandle> {
        Arc::new(SessionHandle::new(
            sid,
            format!("s{sid}").into(),
            Capabilities::SSE,
            1 << 30,
        ))
    }

    fn offsets(s: &SessionHandle) -> Vec<u64> {
        let mut items = Vec::new();
        s.outbox.drain(&mut items, 1000);
        items
            .iter()
            .filter_map(|i| match i {
                Outbound::Pub(p) => Some(p.offset),
                _ => None,
            })
            .collect()
    }

    /// Two subscribers recover at once on a channel new to this node, and the one whose history
    /// read saw the higher top activates first. The publications between the two tops are still
    /// on their way from the broker (they were published after the older read): they must reach
    /// the subscriber that read history earlier. (Found by switchboard-chaos: one or two
    /// publications missing right after many clients reconnected to one node.)
    #[tokio::test]
    async fn publications_in_flight_reach_a_subscriber_whose_history_read_was_older() {
        let hub = Hub::new(Arc::new(Registry::default()));
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        hub.set_engine(&engine);
        let (early, late) = (session(1), session(2));
        let entry = hub.subscribe(&early, "c").await.unwrap();
        hub.subscribe(&late, "c").await.unwrap();
        // `early` read history when the channel stood at 100, `late` when it stood at 103.
        hub.activate(&entry, &late, &StreamPosition::new(103, "e"), Vec::new());
        hub.activate(&entry, &early, &StreamPosition::new(100, "e"), Vec::new());
        for o in 101..=104 {
            hub.publication("c", "e", publication(o));
        }
        assert_eq!(offsets(&early), [101, 102, 103, 104]);
        assert_eq!(offsets(&late), [104], "nothing it read from history again");
    }

    /// A publication that reaches the hub twice (a resync that overlaps what was already
    /// delivered) goes to each subscriber once, whether it was active or still buffering.
    #[tokio::test]
    async fn a_publication_delivered_twice_reaches_each_subscriber_once() {
        let hub = Hub::new(Arc::new(Registry::default()));
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        hub.set_engine(&engine);
        let (active, buffering) = (session(1), session(2));
        let entry = hub.subscribe(&active, "c").await.unwrap();
        hub.activate(&entry, &active, &StreamPosition::new(0, "e"), Vec::new());
        hub.subscribe(&buffering, "c").await.unwrap();
        for o in [1, 2, 2, 1, 3] {
            hub.publication("c", "e", publication(o));
        }
        hub.activate(&entry, &buffering, &StreamPosition::new(0, "e"), Vec::new());
        assert_eq!(offsets(&active), [1, 2, 3]);
        assert_eq!(offsets(&buffering), [1, 2, 3]);
    }
    /// The broker lost publications in flight (a Redis restart) while the channel's position
    /// was already past them: the resync after the reconnect starts where the subscriber
    /// furthest behind stands, so it gets them from history, and the others nothing twice.
    #[tokio::test]
    async fn a_resync_after_a_broker_loss_fills_the_subscriber_furthest_behind() {
        use crate::engine::PublishOptions;
        let hub = Hub::new(Arc::new(Registry::default()));
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        hub.set_engine(&engine);
        let opts = PublishOptions {
            history_size: 1000,
            history_ttl: std::time::Duration::from_secs(600),
            ..PublishOptions::default()
        };
        // Not started: publishing stores without fanning out, as if the broker lost it all.
        let mut epoch = String::new();
        for _ in 1..=104 {
            let r = engine.publish("c", Bytes::from_static(b"1"), &opts).await;
            epoch = r.unwrap().position.epoch;
        }
        let (early, late) = (session(1), session(2));
        let entry = hub.subscribe(&early, "c").await.unwrap();
        hub.subscribe(&late, "c").await.unwrap();
        hub.activate(
            &entry,
            &late,
            &StreamPosition::new(103, &*epoch),
            Vec::new(),
        );
        hub.activate(
            &entry,
            &early,
            &StreamPosition::new(100, &*epoch),
            Vec::new(),
        );
        hub.reconnected();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = (Vec::new(), Vec::new());
        while got.0.len() < 4 {
            assert!(tokio::time::Instant::now() < deadline, "{got:?}");
            tokio::task::yield_now().await;
            got.0.extend(offsets(&early));
            got.1.extend(offsets(&late));
        }
        assert_eq!(got.0, [101, 102, 103, 104]);
        got.1.extend(offsets(&late));
        assert_eq!(got.1, [104]);
    }
}
