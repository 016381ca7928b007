//! Who reads a partition for a consumer group. Event Hubs' rules: an epoch (owner
//! level) receiver at or above the current holder's epoch takes the partition, and the
//! holders lose their links with `amqp:link:stolen`; a lower epoch, or a receiver with
//! no epoch while an epoch receiver holds it, is refused. At most five receivers per
//! partition and consumer group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

pub const MAX_RECEIVERS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    hub: String,
    consumer_group: String,
    partition: i32,
}

#[derive(Debug)]
struct Holder {
    id: u64,
    epoch: Option<i64>,
    stolen: Option<oneshot::Sender<()>>,
}

#[derive(Debug, Default)]
pub struct Ownership {
    next_id: std::sync::atomic::AtomicU64,
    holders: Mutex<HashMap<Key, Vec<Holder>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A holder has a higher epoch, or has one when this receiver has none.
    Epoch(String),
    TooManyReceivers,
}

/// A receiver's hold on a partition; dropping it lets go.
#[derive(Debug)]
pub struct Hold {
    owner: Arc<Ownership>,
    key: Key,
    id: u64,
    /// Fires when a later epoch receiver takes the partition.
    pub stolen: oneshot::Receiver<()>,
}

impl Ownership {
    fn holders(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Holder>>> {
        // Each change is one push or retain, so the map is whole after a panic.
        self.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn acquire(
        self: &Arc<Self>,
        hub: &str,
        consumer_group: &str,
        partition: i32,
        epoch: Option<i64>,
    ) -> Result<Hold, Refused> {
        let key = Key {
            hub: hub.to_ascii_lowercase(),
            consumer_group: consumer_group.to_ascii_lowercase(),
            partition,
        };
        let mut all = self.holders();
        let list = all.entry(key.clone()).or_default();
        let top = list.iter().filter_map(|h| h.epoch).max();
        match (epoch, top) {
            (Some(e), Some(t)) if e < t => {
                return Err(Refused::Epoch(format!(
                    "a receiver with epoch {t} holds partition {partition}; epoch {e} is lower"
                )))
            }
            (None, Some(t)) => {
                return Err(Refused::Epoch(format!(
                    "a receiver with epoch {t} holds partition {partition}"
                )))
            }
            (Some(_), _) => {
                // Every current holder loses the partition.
                for h in list.iter_mut() {
                    if let Some(tx) = h.stolen.take() {
                        let _ = tx.send(());
                    }
                }
                list.clear();
            }
            (None, None) => {
                if list.len() >= MAX_RECEIVERS {
                    return Err(Refused::TooManyReceivers);
                }
            }
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        list.push(Holder {
            id,
            epoch,
            stolen: Some(tx),
        });
        Ok(Hold {
            owner: self.clone(),
            key,
            id,
            stolen: rx,
        })
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut all = self.owner.holders();
        if let Some(list) = all.get_mut(&self.key) {
            list.retain(|h| h.id != self.id);
            if list.is_empty() {
                all.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_steal_and_refuse() {
        let o = Arc::new(Ownership::default());
        let mut a = o.acquire("eh", "$Default", 0, Some(0)).unwrap();
        // An equal epoch steals (the processors rely on it).
        let mut b = o.acquire("EH", "$default", 0, Some(0)).unwrap();
        assert!(a.stolen.try_recv().is_ok());
        let mut c = o.acquire("eh", "$Default", 0, Some(1)).unwrap();
        assert!(b.stolen.try_recv().is_ok());
        assert!(matches!(
            o.acquire("eh", "$Default", 0, Some(0)),
            Err(Refused::Epoch(_))
        ));
        assert!(matches!(
            o.acquire("eh", "$Default", 0, None),
            Err(Refused::Epoch(_))
        ));
        assert!(c.stolen.try_recv().is_err());
        drop(c);
        // Once the epoch holder is gone, plain receivers may come, five at most.
        let plain: Vec<_> = (0..5)
            .map(|_| o.acquire("eh", "$Default", 0, None).unwrap())
            .collect();
        assert_eq!(
            o.acquire("eh", "$Default", 0, None).unwrap_err(),
            Refused::TooManyReceivers
        );
        // Another group or partition is separate.
        assert!(o.acquire("eh", "cg1", 0, None).is_ok());
        // An epoch receiver takes the partition from all five.
        let _e = o.acquire("eh", "$Default", 0, Some(3)).unwrap();
        for mut p in plain {
            assert!(p.stolen.try_recv().is_ok());
        }
    }
}
