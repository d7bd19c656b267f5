//! The three-broker cluster the replication and election tests start: a coordinator and
//! brokers 1, 2, 3, each in its own directory, on short test timeouts (session 1 s, follower
//! fetch wait 100 ms) unless the test's `extra` lines say otherwise. Tests add their own
//! lookups (`impl Cluster` in the test file) on top.

use super::{TestBroker, TestCoordinator, start_coordinator};

/// A coordinator and three brokers (ids 1, 2, 3).
pub struct Cluster {
    pub coordinator: TestCoordinator,
    pub brokers: Vec<TestBroker>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `extra` lines go into every broker's `server.properties` (they win over the defaults).
    pub fn start(extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = start_coordinator();
        let extra =
            format!("zookeeper.session.timeout.ms=1000\nreplica.fetch.wait.max.ms=100\n{extra}");
        let brokers = (1..=3)
            .map(|id| {
                let broker_dir = dir.path().join(format!("broker-{id}"));
                std::fs::create_dir_all(&broker_dir).unwrap();
                TestBroker::start(&broker_dir, &coordinator, id, &extra)
            })
            .collect();
        Cluster {
            coordinator,
            brokers,
            _dir: dir,
        }
    }

    pub fn broker(&mut self, id: i32) -> &mut TestBroker {
        self.brokers.iter_mut().find(|b| b.broker_id == id).unwrap()
    }

    /// A broker's log so far.
    pub fn broker_output(&self, id: i32) -> String {
        self.brokers
            .iter()
            .find(|b| b.broker_id == id)
            .map(TestBroker::output)
            .unwrap_or_default()
    }

    /// Every running broker's address.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .filter(|b| b.process.is_some())
            .map(TestBroker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }
}
