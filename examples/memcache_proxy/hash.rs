//! A consistent-hash ring, ketama-style: each server owns many points on a
//! 64-bit circle, and a key goes to the server of the first point at or after
//! its hash. Adding or removing a server moves only the keys of the arcs it
//! gains or loses (about 1/n of them), never keys between the others.
//!
//! The points hash `"ADDR-N"` for N in `0..VNODES`, like libketama, but with
//! FNV-1a and a 64-bit finaliser instead of MD5 (no hashing crate is needed,
//! and the spread is as even): a key's server is not the one libmemcached's
//! ketama would pick.

/// Points per server: enough for an even spread (each server within a few
/// percent of its share with three servers).
pub const VNODES: usize = 160;

/// The ring: sorted points, each naming its server by index.
#[derive(Clone, Debug)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// A ring over servers named `names` (their index is what
    /// [`server_for`](Ring::server_for) returns).
    pub fn new<S: AsRef<str>>(names: &[S]) -> Ring {
        let mut points = Vec::with_capacity(names.len() * VNODES);
        for (index, name) in names.iter().enumerate() {
            for v in 0..VNODES {
                points.push((hash(format!("{}-{v}", name.as_ref()).as_bytes()), index));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The index of the server that owns `key`; `None` for an empty ring.
    pub fn server_for(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash(key);
        let i = self.points.partition_point(|&(p, _)| p < h);
        Some(self.points[i % self.points.len()].1)
    }
}

/// FNV-1a, then murmur3's 64-bit finaliser to spread FNV's weak low bits.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.1:{}", 11211 + i)).collect()
    }

    #[test]
    fn keys_spread_evenly() {
        let ring = Ring::new(&names(3));
        let mut counts = [0usize; 3];
        for i in 0..30_000 {
            counts[ring.server_for(format!("key:{i}").as_bytes()).unwrap()] += 1;
        }
        for count in counts {
            assert!((7_000..13_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn adding_a_server_moves_only_its_share() {
        let before = Ring::new(&names(3));
        let after = Ring::new(&names(4));
        let mut moved = 0;
        for i in 0..20_000 {
            let key = format!("key:{i}");
            let (a, b) = (
                before.server_for(key.as_bytes()),
                after.server_for(key.as_bytes()),
            );
            if a != b {
                // A key that moves, moves to the new server, never elsewhere.
                assert_eq!(b, Some(3), "{key}");
                moved += 1;
            }
        }
        assert!((3_000..7_000).contains(&moved), "{moved} of 20000 moved");
    }

    #[test]
    fn empty_ring_and_single_server() {
        assert_eq!(Ring::new::<String>(&[]).server_for(b"k"), None);
        assert_eq!(Ring::new(&names(1)).server_for(b"k"), Some(0));
    }
}
