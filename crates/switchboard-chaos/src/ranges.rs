//! A set of offsets kept as sorted, disjoint, inclusive ranges: one range for a subscriber that
//! saw everything in order, a few more for one that did not.

/// Sorted disjoint inclusive ranges of `u64`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranges {
    r: Vec<(u64, u64)>,
}

impl Ranges {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: u64) -> bool {
        // The first range whose end is at or after `v`.
        let i = self.r.partition_point(|&(_, hi)| hi < v);
        self.r.get(i).is_some_and(|&(lo, _)| lo <= v)
    }

    /// Adds `v`; returns `false` when it was already there. Appending in order is O(1).
    pub fn insert(&mut self, v: u64) -> bool {
        if let Some(last) = self.r.last_mut() {
            if v == last.1.wrapping_add(1) && v != 0 {
                last.1 = v;
                return true;
            }
            if v > last.1 {
                self.r.push((v, v));
                return true;
            }
        } else {
            self.r.push((v, v));
            return true;
        }
        let i = self.r.partition_point(|&(_, hi)| hi < v);
        if self.r[i].0 <= v {
            return false;
        }
        // `v` goes before range `i`: join it with its neighbours where they touch.
        let joins_next = self.r[i].0 == v + 1;
        let joins_prev = i > 0 && self.r[i - 1].1 + 1 == v;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.r[i - 1].1 = self.r[i].1;
                self.r.remove(i);
            }
            (true, false) => self.r[i - 1].1 = v,
            (false, true) => self.r[i].0 = v,
            (false, false) => self.r.insert(i, (v, v)),
        }
        true
    }

    /// Adds every value of `lo..=hi` (no-op when `lo > hi`).
    pub fn insert_range(&mut self, lo: u64, hi: u64) {
        if lo > hi {
            return;
        }
        let mut merged = (lo, hi);
        let mut out = Vec::with_capacity(self.r.len() + 1);
        let mut placed = false;
        for &(a, b) in &self.r {
            if b.saturating_add(1) < merged.0 {
                out.push((a, b));
            } else if merged.1.saturating_add(1) < a {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push((a, b));
            } else {
                merged = (merged.0.min(a), merged.1.max(b));
            }
        }
        if !placed {
            out.push(merged);
        }
        self.r = out;
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.r
    }

    /// Number of values in the set.
    pub fn len(&self) -> u64 {
        self.r.iter().map(|&(a, b)| b - a + 1).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_inserts_stay_one_range() {
        let mut s = Ranges::new();
        for v in 5..=100 {
            assert!(s.insert(v));
        }
        assert_eq!(s.ranges(), &[(5, 100)]);
        assert!(!s.insert(50));
        assert!(s.contains(5) && s.contains(100) && !s.contains(4) && !s.contains(101));
    }

    #[test]
    fn holes_are_filled_and_joined() {
        let mut s = Ranges::new();
        for v in [1, 2, 3, 7, 8, 5] {
            assert!(s.insert(v));
        }
        assert_eq!(s.ranges(), &[(1, 3), (5, 5), (7, 8)]);
        assert!(s.insert(4));
        assert_eq!(s.ranges(), &[(1, 5), (7, 8)]);
        assert!(s.insert(6));
        assert_eq!(s.ranges(), &[(1, 8)]);
        assert!(s.insert(0));
        assert_eq!(s.ranges(), &[(0, 8)]);
        assert_eq!(s.len(), 9);
    }

    #[test]
    fn ranges_merge() {
        let mut s = Ranges::new();
        s.insert_range(10, 20);
        s.insert_range(1, 3);
        s.insert_range(30, 40);
        assert_eq!(s.ranges(), &[(1, 3), (10, 20), (30, 40)]);
        s.insert_range(4, 9);
        assert_eq!(s.ranges(), &[(1, 20), (30, 40)]);
        s.insert_range(15, 35);
        assert_eq!(s.ranges(), &[(1, 40)]);
        s.insert_range(5, 4);
        assert_eq!(s.len(), 40);
    }
}
