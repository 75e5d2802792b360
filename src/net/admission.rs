//! Admission: how many connections are served at once, and from where.
//!
//! One type owns every count: the connections holding a slot, those closed
//! to make room whose threads have not let go yet, each address's
//! connections (`--max-per-ip`), and the registry of open connections (to
//! close a camera's older link, and every link at stop). A slot is taken in
//! one step under the registry's lock (check, eviction, increment), so two
//! listeners (`--port` and `--tls-port`) never both take the last one; its
//! address is claimed in one step too, recorded on the slot; and all of it
//! is given back by the slot's `Drop`, however the connection's thread
//! ends (an early return, a panic).

use crate::lock;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct Conn {
    /// Set once the init packet is in: from then on it is never evicted.
    imei: Option<u64>,
    /// Closed to make room (before its init packet): not chosen again.
    evicted: bool,
    /// The address counted against --max-per-ip (the camera's, after a PROXY header).
    ip: Option<IpAddr>,
    /// The camera's socket, shared with its thread (one descriptor, not a clone).
    stream: Arc<TcpStream>,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Conn>,
    per_ip: HashMap<IpAddr, usize>,
}

pub(crate) struct Admission {
    max_connections: usize,
    max_per_ip: usize,
    /// Connections holding a slot (read without the lock: `/metrics`,
    /// the status line, a stop's wait).
    active: AtomicUsize,
    /// Connections evicted to make room whose threads have not let go yet
    /// (changed under the registry's lock, with it).
    leaving: AtomicUsize,
    next_id: AtomicU64,
    table: Mutex<Table>,
}

/// A connection's claim on the server: its entry in the registry, its place
/// in the connection count and its per-address count, all given back when
/// it drops.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    id: u64,
}

/// What taking a slot did: the slot, and the connection closed to make room
/// for it (its id), if one was.
pub(crate) struct Taken {
    pub slot: Slot,
    pub evicted: Option<u64>,
}

impl Admission {
    pub fn new(max_connections: usize, max_per_ip: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_connections,
            max_per_ip,
            active: AtomicUsize::new(0),
            leaving: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            table: Mutex::new(Table::default()),
        })
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub fn max_per_ip(&self) -> usize {
        self.max_per_ip
    }

    /// Connections holding a slot now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// A slot, when there is room or room can be made: when the table is
    /// full, the oldest connection that has not sent its init packet yet (a
    /// scanner, a TLS handshake trickling, a PROXY header that never ends)
    /// is closed to make it, as OpenSSH's MaxStartups drops unauthenticated
    /// connections first; a camera past its init is never evicted. None
    /// when every connection is past its init. An evicted connection leaves
    /// the count when its thread sees the close (at once), so the count can
    /// pass the limit by the evictions still in flight.
    pub fn take(self: &Arc<Self>, stream: Arc<TcpStream>) -> Option<Taken> {
        let mut table = lock(&self.table);
        let mut evicted = None;
        let leaving = self.leaving.load(Ordering::SeqCst);
        if self.active().saturating_sub(leaving) >= self.max_connections {
            // Ids grow with time: the smallest is the oldest.
            let (id, victim) = table
                .conns
                .iter_mut()
                .filter(|(_, c)| c.imei.is_none() && !c.evicted)
                .min_by_key(|(id, _)| **id)?;
            victim.evicted = true;
            self.leaving.fetch_add(1, Ordering::SeqCst);
            let _ = victim.stream.shutdown(Shutdown::Both);
            evicted = Some(*id);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        table.conns.insert(
            id,
            Conn {
                imei: None,
                evicted: false,
                ip: None,
                stream,
            },
        );
        self.active.fetch_add(1, Ordering::SeqCst);
        Some(Taken {
            slot: Slot {
                admission: self.clone(),
                id,
            },
            evicted,
        })
    }

    /// A camera keeps one link: when it reconnects (a cellular drop the
    /// server has not noticed yet), its older links are closed so its
    /// partial is freed for resume. The number closed.
    pub fn one_link_per_camera(&self, slot: &Slot, imei: u64) -> usize {
        let mut table = lock(&self.table);
        let mut closed = 0;
        for (other, c) in table.conns.iter_mut() {
            if *other != slot.id && c.imei == Some(imei) {
                let _ = c.stream.shutdown(Shutdown::Both);
                closed += 1;
            }
        }
        if let Some(entry) = table.conns.get_mut(&slot.id) {
            entry.imei = Some(imei);
        }
        closed
    }

    /// Closes every open connection (a stop): their threads see the close.
    pub fn close_all(&self) {
        let open: Vec<Arc<TcpStream>> = lock(&self.table)
            .conns
            .values()
            .map(|c| c.stream.clone())
            .collect();
        for s in open {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Slot {
    /// The connection's number (its registry key; ids grow with time).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Counts this connection against `ip`'s `--max-per-ip`, in the same
    /// step that records it on the slot (so it is given back with the
    /// slot). False, and nothing counted, when `ip` has its maximum already
    /// or this slot claimed an address before.
    pub fn claim_ip(&self, ip: IpAddr) -> bool {
        let a = &self.admission;
        let mut table = lock(&a.table);
        let Table { conns, per_ip } = &mut *table;
        let Some(conn) = conns.get_mut(&self.id) else {
            return false;
        };
        if conn.ip.is_some() {
            return false;
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= a.max_per_ip {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            return false;
        }
        *n += 1;
        conn.ip = Some(ip);
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.admission;
        {
            let mut table = lock(&a.table);
            if let Some(conn) = table.conns.remove(&self.id) {
                if conn.evicted {
                    a.leaving.fetch_sub(1, Ordering::SeqCst);
                }
                if let Some(ip) = conn.ip {
                    if let Some(n) = table.per_ip.get_mut(&ip) {
                        *n -= 1;
                        if *n == 0 {
                            table.per_ip.remove(&ip);
                        }
                    }
                }
            }
        }
        a.active.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected socket pair's server side (admission only shuts it down).
    fn stream(l: &TcpListener) -> Arc<TcpStream> {
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        Arc::new(l.accept().unwrap().0)
    }

    #[test]
    fn the_last_slot_is_taken_once_by_racing_listeners() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let streams: Vec<_> = (0..16).map(|_| stream(&l)).collect();
        for _ in 0..50 {
            let a = Admission::new(8, 100);
            // Every slot past its init: none can be evicted.
            let held: Vec<Slot> = (0..7)
                .map(|i| {
                    let t = a.take(streams[i].clone()).unwrap();
                    a.one_link_per_camera(&t.slot, i as u64);
                    t.slot
                })
                .collect();
            // Nine threads race for the last slot; a winner may be closed
            // again by a later one before it marks its camera (that is an
            // eviction, counted): what stays is exactly one.
            let won: Vec<Taken> = std::thread::scope(|s| {
                let hs: Vec<_> = (7..16)
                    .map(|i| {
                        let (a, st) = (a.clone(), streams[i].clone());
                        s.spawn(move || a.take(st))
                    })
                    .collect();
                hs.into_iter().filter_map(|h| h.join().unwrap()).collect()
            });
            let evictions = won.iter().filter(|t| t.evicted.is_some()).count();
            assert_eq!(won.len() - evictions, 1);
            assert_eq!(a.active() - a.leaving.load(Ordering::SeqCst), 8);
            drop(won);
            drop(held);
            assert_eq!(a.active(), 0);
        }
    }

    #[test]
    fn an_address_claim_is_given_back_with_its_slot_however_it_ends() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = Admission::new(10, 2);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = a.take(stream(&l)).unwrap().slot;
        let s2 = a.take(stream(&l)).unwrap().slot;
        let s3 = a.take(stream(&l)).unwrap().slot;
        assert!(s1.claim_ip(ip));
        assert!(!s1.claim_ip(ip), "a slot claims one address");
        assert!(s2.claim_ip(ip));
        assert!(!s3.claim_ip(ip), "the third from one address is refused");
        // A thread that panics holding its slot gives it back.
        let r = std::thread::spawn(move || {
            let _held = s2;
            panic!("a camera's thread failed");
        })
        .join();
        assert!(r.is_err());
        assert!(s3.claim_ip(ip), "the panicked thread's claim came back");
        drop((s1, s3));
        assert_eq!(a.active(), 0);
        assert!(lock(&a.table).per_ip.is_empty());
    }

    #[test]
    fn a_full_table_evicts_the_oldest_connection_before_its_init() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = Admission::new(2, 10);
        let old = a.take(stream(&l)).unwrap();
        let camera = a.take(stream(&l)).unwrap();
        a.one_link_per_camera(&camera.slot, 7);
        let new = a.take(stream(&l)).unwrap();
        assert_eq!(new.evicted, Some(old.slot.id()));
        // Every connection is a camera or leaving: no room.
        a.one_link_per_camera(&new.slot, 8);
        assert!(a.take(stream(&l)).is_none());
        drop(old);
        assert!(a.take(stream(&l)).is_none(), "two cameras fill two slots");
        drop(new);
        let next = a.take(stream(&l)).unwrap();
        assert_eq!(next.evicted, None);
    }
}
