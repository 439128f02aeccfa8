//! The workload every strategy of a run faces: when each client starts its calls, how long
//! an answer takes, and the seeds that split one run seed into independent random streams.

use std::time::Duration;

use novita_policy::SplitMix64;

/// Each client starts one call this often.
pub(crate) const CALL_INTERVAL: Duration = Duration::from_secs(2);
/// Calls start during this long; calls still running afterwards run to their end.
pub(crate) const LOAD_WINDOW: Duration = Duration::from_secs(180);
/// From a request leaving the client to its answer arriving, whatever the answer.
pub(crate) const LATENCY: Duration = Duration::from_millis(100);

/// Salts that split one seed into independent random streams.
const WORKLOAD_STREAM: u64 = 0x574F_524B;
const SERVER_STREAM: u64 = 0x5345_5256;
const CLIENT_STREAMS: u64 = 0x434C_0000_0000;

/// A seed for the random stream `stream` of a run seeded with `seed`.
fn stream_seed(seed: u64, stream: u64) -> u64 {
    SplitMix64::new(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// The seed of the server's random faults.
pub(crate) fn server_seed(seed: u64) -> u64 {
    stream_seed(seed, SERVER_STREAM)
}

/// The seed of client `client`'s own random stream.
pub(crate) fn client_seed(seed: u64, client: usize) -> u64 {
    stream_seed(seed, CLIENT_STREAMS.wrapping_add(client as u64))
}

/// When each client starts its calls: the same for every strategy of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Workload {
    /// The offset of each client's first call, in `[0, CALL_INTERVAL)`.
    phases: Vec<Duration>,
}

impl Workload {
    /// `clients` clients with random phases drawn from `seed`.
    pub(crate) fn new(clients: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(stream_seed(seed, WORKLOAD_STREAM));
        let phases = (0..clients)
            .map(|_| CALL_INTERVAL.mul_f64(rng.draw().get()))
            .collect();
        Self { phases }
    }

    /// How many clients.
    pub(crate) fn clients(&self) -> usize {
        self.phases.len()
    }

    /// The offset of each client's first call, by client index.
    pub(crate) fn phases(&self) -> &[Duration] {
        &self.phases
    }
}
