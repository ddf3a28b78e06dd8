//! The randomized runner and its checkers: a fixed set of seeds holds every invariant, a seed's
//! run is a pure function of it, and each checker reports the fault it guards against when that
//! fault is injected by hand. Sweeps of many seeds run outside `cargo test`
//! (`cargo run -p wazuh-cluster-sim --release --bin vopr -- --seeds A..B`, README).

use std::time::Duration;

use wazuh_cluster_sim::checkers::{Checker, Violation};
use wazuh_cluster_sim::clock::VirtualTime;
use wazuh_cluster_sim::cluster::{Cluster, ClusterBuilder};
use wazuh_cluster_sim::fixtures::{START, master_tree, recorded_intervals};
use wazuh_cluster_sim::net::LinkEnd;
use wazuh_cluster_sim::scenario;
use wazuh_cluster_sim::shrink::shrink_with;
use wazuh_cluster_sim::sim::{DiskFaults, SimConfig};
use wazuh_cluster_sim::swarm::{FaultRates, SEND_BUFFER_RANGE, SwarmOptions};
use wazuh_cluster_sim::tree::{TreeFile, storage_from};
use wazuh_cluster_sim::vopr::{Failure, run_options, run_options_after_heal, run_seed};
use wazuh_cluster_sync::integrity::memory::StorageFault;
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage, Timestamp};
use wazuh_cluster_sync::roles::{NodeEvent, SyncKind};
use wazuh_cluster_testkit::install_path as path;

/// Seeds with faults of every kind among them, each run small enough for a debug build. Seed 27
/// is the first sweep's finding: the checker read the storage of a master that had crashed (every
/// read failing) after an operator edit and called its agent-info lost; a down node's disk is now
/// checked once it restarts.
const SEEDS: [u64; 17] = [
    145, 132, 160, 226, 209, 131, 77, 176, 118, 139, 108, 54, 201, 52, 10, 121, 27,
];

#[test]
fn a_fixed_set_of_seeds_holds_every_invariant_and_converges_after_healing() {
    let (mut faults, mut held_writes) = (0, 0);
    for seed in SEEDS {
        match run_seed(seed) {
            Ok(report) => {
                faults += report.faults;
                held_writes += report.send_buffer_full;
            }
            Err(f) => panic!(
                "seed {seed}: {} ({})\nreplay: {}\n{}",
                f.violation,
                f.violation.invariant(),
                f.replay_command(),
                f.recent.join("\n")
            ),
        }
    }
    assert!(
        faults >= SEEDS.len() as u64,
        "the runs injected only {faults} faults"
    );
    // Most of these seeds draw a bounded send buffer: the nodes met partial writes.
    assert!(held_writes > 0, "no send buffer ever filled");
}

#[test]
fn a_seed_run_twice_gives_the_same_report_and_its_options_name_the_replay_command() {
    let a = run_seed(132).unwrap();
    let b = run_seed(132).unwrap();
    assert_eq!(a, b);
    assert_ne!(run_seed(160).unwrap().trace_hash, a.trace_hash);
    let opts = SwarmOptions::from_seed(132);
    assert_eq!(opts, SwarmOptions::from_seed(132));
    assert_eq!(
        opts.replay_command(),
        "cargo run -p wazuh-cluster-sim --release --bin vopr -- --seed 132"
    );
    let printed = opts.to_string();
    for key in [
        "workers=",
        "latency=",
        "crash=",
        "edits every",
        "sync_integrity=",
    ] {
        assert!(printed.contains(key), "{key} missing from\n{printed}");
    }
}

#[test]
fn the_send_buffer_is_drawn_unbounded_or_within_its_range() {
    let (lo, hi) = SEND_BUFFER_RANGE;
    let drawn: Vec<Option<usize>> = (0..400)
        .map(|seed| SwarmOptions::from_seed(seed).link.send_buffer)
        .collect();
    let bounded: Vec<usize> = drawn.iter().flatten().copied().collect();
    assert!(
        (120..280).contains(&bounded.len()),
        "about half bounded: {}",
        bounded.len()
    );
    assert!(bounded.iter().all(|b| (lo..hi).contains(b)), "{bounded:?}");
    // Both ends of the range are reached: buffers smaller than one 64 KiB frame, and megabytes.
    assert!(bounded.iter().any(|&b| b < 32 << 10), "{bounded:?}");
    assert!(bounded.iter().any(|&b| b >= 4 << 20), "{bounded:?}");
    // Its own stream: the other draws of a seed are those it had before the buffer was drawn.
    let o = SwarmOptions::from_seed(132);
    assert_eq!(
        (o.workers, o.agents, o.extra_files, o.max_file_size),
        (2, 2, 1, 40 << 10)
    );
    assert_eq!(o.link.latency, Duration::from_micros(20_804));
}

/// One master over the fixture tree and one worker holding one fresh agent-info file, converged.
fn converged_pair() -> Cluster {
    let info = TreeFile::new(
        "/queue/agent-info/agent-one-10.0.0.1",
        "Linux |agent-one |5.4 |x86_64\n",
        Timestamp::from_secs(START - 60),
    );
    let mut c = ClusterBuilder::new(SimConfig::default())
        .master("master01", storage_from(master_tree()).unwrap())
        .worker("worker1", storage_from([info]).unwrap())
        .configure(recorded_intervals)
        .build()
        .unwrap();
    c.sim.run_for(Duration::from_secs(12)).unwrap();
    assert!(c.integrity_converged());
    c
}

/// Steps `c` up to `secs` more virtual seconds with `checker` after every event.
fn checked(c: &mut Cluster, checker: &mut Checker, secs: u64) -> Result<(), Violation> {
    let until = c.sim.now().plus(Duration::from_secs(secs));
    while c.sim.next_event_at().is_some_and(|t| t <= until) {
        c.sim.step();
        checker.after_event(&c.sim)?;
    }
    Ok(())
}

/// Writes `data` at `p` on node `n` through the storage's own operations (as a node would).
fn write(c: &mut Cluster, n: usize, p: &str, data: &[u8]) {
    let s = c.sim.storage_mut(n);
    let id = s.begin_write(&path(p)).unwrap();
    s.append(id, data).unwrap();
    s.commit_write(
        id,
        &FileAttrs {
            mode: 0o660,
            mtime: None,
        },
    )
    .unwrap();
}

#[test]
fn the_checkers_see_nothing_wrong_in_a_healthy_run() {
    let mut c = converged_pair();
    let mut checker = Checker::new(&c.sim, c.master, &c.workers);
    checked(&mut c, &mut checker, 30).unwrap();
}

#[test]
fn the_checkers_observe_without_moving_any_storages_operation_count() {
    // A crash or disk fault is scheduled "after k operations": a checker whose reads counted
    // would move it, and a run would behave differently with the checkers on.
    let mut c = converged_pair();
    let mut checker = Checker::new(&c.sim, c.master, &c.workers);
    let w = c.workers[0];
    write(&mut c, w, "/etc/rules/local_rules.xml", b"<group/>\n");
    let counts = |c: &Cluster| -> Vec<u64> {
        (0..c.sim.len())
            .map(|n| c.sim.storage(n).operations())
            .collect()
    };
    let before = counts(&c);
    let v = checker.after_event(&c.sim).unwrap_err();
    assert_eq!(v.invariant(), "consistent-content", "{v}");
    assert_eq!(counts(&c), before);
}

#[test]
fn a_torn_apply_on_a_worker_is_reported() {
    let mut c = converged_pair();
    let mut checker = Checker::new(&c.sim, c.master, &c.workers);
    // Half of the master's rules file: what a torn write would leave.
    let full = c.sim.storage(c.master).files()[&path("/etc/rules/local_rules.xml")].clone();
    let w = c.workers[0];
    write(
        &mut c,
        w,
        "/etc/rules/local_rules.xml",
        &full[..full.len() / 2],
    );
    let v = checked(&mut c, &mut checker, 1).unwrap_err();
    assert_eq!(v.invariant(), "consistent-content", "{v}");
    assert!(
        v.to_string()
            .contains("worker1 holds /etc/rules/local_rules.xml"),
        "{v}"
    );
}

#[test]
fn a_file_outside_the_items_is_reported() {
    let mut c = converged_pair();
    let mut checker = Checker::new(&c.sim, c.master, &c.workers);
    let w = c.workers[0];
    write(&mut c, w, "/etc/ossec.conf", b"<ossec_config/>\n");
    let v = checked(&mut c, &mut checker, 1).unwrap_err();
    assert_eq!(
        v,
        Violation::Confinement {
            node: "worker1".to_owned(),
            path: path("/etc/ossec.conf"),
        }
    );
}

#[test]
fn a_lost_agent_info_file_is_reported() {
    let mut c = converged_pair();
    let m = c.master;
    let p = path("/queue/agent-info/agent-one-10.0.0.1");
    assert!(
        c.sim.storage(m).files().contains_key(&p),
        "agent-info reached the master"
    );
    let mut checker = Checker::new(&c.sim, c.master, &c.workers);
    c.sim.storage_mut(m).remove_file(&p).unwrap();
    let v = checked(&mut c, &mut checker, 1).unwrap_err();
    assert!(
        matches!(&v, Violation::AgentInfoLost { path: lost, now: None, .. } if *lost == p),
        "{v}"
    );
}

#[test]
fn one_apply_writing_files_of_two_master_versions_is_reported() {
    let mut c = converged_pair();
    let (m, w) = (c.master, c.workers[0]);
    let mut checker = Checker::new(&c.sim, m, &c.workers);
    let (a, b) = ("/etc/lists/list-a", "/etc/lists/list-b");
    // Two versions of the master's tree: both files at 1, then both at 2.
    for version in [b"1\n", b"2\n"] {
        for p in [a, b] {
            c.sim
                .storage_mut(m)
                .add_file(
                    &path(p),
                    version.to_vec(),
                    Timestamp::from_secs(START),
                    0o660,
                )
                .unwrap();
            checker.allow(m, path(p));
        }
        checker.record_master(&c.sim).unwrap();
    }
    // One step writing both from version 2, then both from version 1: each one version.
    write(&mut c, w, a, b"2\n");
    write(&mut c, w, b, b"2\n");
    checked(&mut c, &mut checker, 1).unwrap();
    write(&mut c, w, a, b"1\n");
    write(&mut c, w, b, b"1\n");
    checked(&mut c, &mut checker, 1).unwrap();
    // Each step is judged by what it changed: `b` alone moving to version 2 is fine...
    write(&mut c, w, b, b"2\n");
    checked(&mut c, &mut checker, 1).unwrap();
    // ...`a` to version 2 and `b` back to 1 at once is a mix.
    write(&mut c, w, a, b"2\n");
    write(&mut c, w, b, b"1\n");
    let v = checked(&mut c, &mut checker, 1).unwrap_err();
    assert_eq!(
        v,
        Violation::MixedVersions {
            worker: "worker1".to_owned(),
            paths: vec![path(a), path(b)],
        }
    );
    assert_eq!(v.invariant(), "one-version-per-apply");
}

#[test]
fn an_effect_result_that_never_reaches_its_node_is_reported() {
    let mut c = converged_pair();
    let (m, w) = (c.master, c.workers[0]);
    let mut checker = Checker::new(&c.sim, m, &c.workers);
    checked(&mut c, &mut checker, 5).unwrap();
    c.sim.lose_effect_results(w, 1);
    let v = checked(&mut c, &mut checker, 30).unwrap_err();
    assert!(
        matches!(
            &v,
            Violation::EffectsInFlight { node, counted, queued }
                if node == "worker1" && counted > queued
        ),
        "{v}"
    );
}

#[test]
fn a_worker_that_never_converges_after_healing_is_named_with_its_files() {
    // A quiet run (no faults, no workload) where, once healed, the worker is cut off for good
    // and the master gets a file it never sees.
    let mut opts = SwarmOptions::from_seed(132);
    opts.workers = 1;
    opts.rates = FaultRates {
        stall: 0,
        partition: 0,
        reset: 0,
        crash: 0,
        effect_failure: 0,
        clock_jump: 0,
    };
    opts.edit_every = None;
    opts.churn_every = None;
    opts.fault_phase = Duration::from_secs(20);
    let f = run_options_after_heal(opts.clone(), |c| {
        let (m, w) = (c.master, c.workers[0]);
        c.sim.partition(m, w);
        for link in c.sim.links_between(m, w) {
            c.sim.reset(link);
        }
        c.sim
            .storage_mut(m)
            .add_file(
                &path("/etc/lists/never-seen"),
                b"k:v\n".to_vec(),
                Timestamp::from_secs(START),
                0o660,
            )
            .unwrap();
    })
    .unwrap_err();
    match &f.violation {
        Violation::NotConverged {
            worker, differing, ..
        } => {
            assert_eq!(worker, "worker1");
            assert!(
                differing.contains(&path("/etc/lists/never-seen")),
                "{differing:?}"
            );
        }
        v => panic!("{v}"),
    }
    assert_eq!(f.violation.invariant(), "liveness");
    assert!(!f.recent.is_empty());
    // Healthy, the same options converge.
    run_options(opts).unwrap();
}

#[test]
fn a_lock_held_over_the_whole_release_window_is_reported() {
    let mut c = converged_pair();
    let (m, w) = (c.master, c.workers[0]);
    let mut checker = Checker::new(&c.sim, m, &c.workers);
    // The worker's next integrity round starts and its file never arrives: the master holds
    // the lock (until timeout_receiving_file, longer than this window).
    let link = c.sim.links_between(m, w)[0];
    c.sim
        .run_until(VirtualTime::from_secs(60), |sim| {
            sim.node(m).lock_free("worker1", SyncKind::Integrity) == Some(false)
        })
        .unwrap();
    c.sim.stall_direction(link, LinkEnd::Dialer);
    checker.open_release_window(&c.sim);
    for _ in 0..20 {
        c.sim.run_for(Duration::from_millis(500)).unwrap();
        checker.watch_release(&c.sim);
    }
    let v = checker.close_release_window(&c.sim).unwrap_err();
    assert_eq!(
        v,
        Violation::LockLeaked {
            worker: "worker1".to_owned(),
            kind: SyncKind::Integrity,
        }
    );
}

#[test]
fn a_crashed_worker_restarts_over_its_recovered_storage_and_converges_again() {
    let mut c = converged_pair();
    let (m, w) = (c.master, c.workers[0]);
    let mut checker = Checker::new(&c.sim, m, &c.workers);
    // A new master file, and the worker dies a few operations into the round that brings it.
    c.sim
        .storage_mut(m)
        .add_file(
            &path("/etc/lists/new-list"),
            b"k:v\n".to_vec(),
            Timestamp::from_secs(START),
            0o660,
        )
        .unwrap();
    checker.allow(m, path("/etc/lists/new-list"));
    checker.record_master(&c.sim).unwrap();
    checked(&mut c, &mut checker, 2).unwrap();
    c.sim.crash(w, 3);
    assert!(c.sim.is_down(w));
    checked(&mut c, &mut checker, 5).unwrap();
    let left = c
        .sim
        .events_of(m)
        .any(|e| matches!(&e.event, NodeEvent::WorkerLeft { name, .. } if name == "worker1"));
    assert!(left, "the master saw the worker's connection drop");
    c.sim.restart(w, -120);
    assert!(!c.sim.is_down(w));
    assert_eq!(
        c.sim.storage(w).staged_writes(),
        0,
        "recovery dropped the staged files"
    );
    checked(&mut c, &mut checker, 20).unwrap();
    assert!(c.integrity_converged(), "{:?}", c.integrity_diff(w));
}

#[test]
fn a_restarted_node_empties_queue_cluster_as_the_daemon_does_at_start() {
    let mut c = converged_pair();
    let (m, w) = (c.master, c.workers[0]);
    // What a run cut short leaves: a package a dead task received, a directory of a name a
    // `hello` once used, and the local socket (kept: the daemon serves on it).
    for n in [m, w] {
        let s = c.sim.storage_mut(n);
        for (p, data) in [
            (
                "/queue/cluster/worker1/integrity.zip",
                &b"half a package"[..],
            ),
            ("/queue/cluster/gone-worker/agent-info.merged", b"old"),
        ] {
            s.add_file(&path(p), data.to_vec(), Timestamp::from_secs(START), 0o640)
                .unwrap();
        }
        s.add_special(&path("/queue/cluster/c-internal.sock"))
            .unwrap();
    }
    let mut checker = Checker::new(&c.sim, m, &c.workers);
    c.sim.crash(w, 0);
    c.sim.crash(m, 0);
    checked(&mut c, &mut checker, 2).unwrap();
    c.sim.restart(m, 0);
    c.sim.restart(w, 0);
    for n in [m, w] {
        let left: Vec<_> = c
            .sim
            .storage(n)
            .snapshot()
            .into_keys()
            .filter(|p| p.starts_with(&path("/queue/cluster")) && *p != path("/queue/cluster"))
            .collect();
        assert_eq!(
            left,
            [path("/queue/cluster/c-internal.sock")],
            "{}",
            c.sim.name(n)
        );
    }
    checked(&mut c, &mut checker, 20).unwrap();
    assert!(c.integrity_converged(), "{:?}", c.integrity_diff(w));
}

#[test]
fn a_running_nodes_wall_clock_steps_everywhere_it_dates_and_the_cluster_still_converges() {
    let mut c = converged_pair();
    let (m, w) = (c.master, c.workers[0]);
    let mut checker = Checker::new(&c.sim, m, &c.workers);
    let unix_at = |c: &Cluster, n: usize| c.sim.node(n).unix_time(c.sim.instant()).secs;
    let before = [unix_at(&c, m), unix_at(&c, w)];
    c.sim.jump_wall_clock(w, -3600);
    c.sim.jump_wall_clock(m, 600);
    assert_eq!(
        [unix_at(&c, m), unix_at(&c, w)],
        [before[0] + 600, before[1] - 3600]
    );
    // The open connections date their tokens by the new clock too.
    let instant = c.sim.instant();
    for (n, expected) in [(m, before[0] + 600), (w, before[1] - 3600)] {
        let node = c.sim.node(n);
        let peers: Vec<_> = node.peers().collect();
        assert!(!peers.is_empty());
        for p in peers {
            let clock = node.connection(p).unwrap().config().wall_clock;
            assert_eq!(clock.unix_secs_at(instant) as i64, expected);
        }
    }
    // A new master file, dated by the master's stepped clock, reaches the worker.
    let mtime = Timestamp::from_secs(unix_at(&c, m));
    c.sim
        .storage_mut(m)
        .add_file(
            &path("/etc/lists/after-the-step"),
            b"k:v\n".to_vec(),
            mtime,
            0o660,
        )
        .unwrap();
    checker.allow(m, path("/etc/lists/after-the-step"));
    checker.record_master(&c.sim).unwrap();
    checked(&mut c, &mut checker, 30).unwrap();
    assert!(c.integrity_converged(), "{:?}", c.integrity_diff(w));
}

#[test]
fn an_agent_registered_after_a_first_agent_info_round_is_accepted_in_the_next() {
    // The master keeps the agents it parsed from client.keys between applies: a new
    // registration must reach it, or the new agent's agent-info is skipped for good.
    let info = |name: &str| {
        TreeFile::new(
            &format!("/queue/agent-info/{name}-10.0.0.9"),
            "Linux |x |5.4 |x86_64\n",
            Timestamp::from_secs(START - 60),
        )
    };
    let mut c = ClusterBuilder::new(SimConfig::default())
        .master("master01", storage_from(master_tree()).unwrap())
        .worker(
            "worker1",
            storage_from([info("agent-one"), info("agent-late")]).unwrap(),
        )
        .configure(recorded_intervals)
        .build()
        .unwrap();
    let m = c.master;
    let on_master = |c: &Cluster, name: &str| {
        c.sim
            .storage(m)
            .files()
            .contains_key(&path(&format!("/queue/agent-info/{name}-10.0.0.9")))
    };
    c.sim.run_for(Duration::from_secs(12)).unwrap();
    assert!(on_master(&c, "agent-one"));
    assert!(!on_master(&c, "agent-late"), "not registered yet");
    let mut keys = c.sim.storage(m).files()[&path("/etc/client.keys")].clone();
    keys.extend_from_slice(
        b"005 agent-late any 3123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    );
    c.sim
        .storage_mut(m)
        .add_file(
            &path("/etc/client.keys"),
            keys,
            Timestamp::from_secs(START + 12),
            0o640,
        )
        .unwrap();
    // The worker writes the agent's file again, so the next round sends it.
    let late = info("agent-late");
    let now = c.sim.unix_now();
    c.sim
        .storage_mut(c.workers[0])
        .add_file(&path(&late.path), late.data, now, 0o660)
        .unwrap();
    c.sim.run_for(Duration::from_secs(30)).unwrap();
    assert!(on_master(&c, "agent-late"));
}

#[test]
fn effects_that_meet_disk_faults_fail_cleanly_and_the_cluster_converges_once_they_stop() {
    let mut c = converged_pair();
    let (m, w) = (c.master, c.workers[0]);
    let mut checker = Checker::new(&c.sim, m, &c.workers);
    for n in [m, w] {
        c.sim.set_disk_faults(
            n,
            DiskFaults {
                fail_per_million: 500_000,
                kind: Some(StorageFault::DiskFull),
                extra_latency: Duration::from_millis(200),
            },
        );
    }
    c.sim
        .storage_mut(m)
        .add_file(
            &path("/etc/rules/local_rules.xml"),
            b"<group name=\"edited\"/>\n".to_vec(),
            Timestamp::from_secs(START),
            0o660,
        )
        .unwrap();
    checker.record_master(&c.sim).unwrap();
    checked(&mut c, &mut checker, 30).unwrap();
    let failed = c
        .sim
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                NodeEvent::SyncFailed { .. } | NodeEvent::Error { .. }
            )
        })
        .count();
    assert!(failed > 0, "no effect met a fault: {:?}", c.sim.events());
    for n in [m, w] {
        c.sim.set_disk_faults(n, DiskFaults::default());
    }
    checked(&mut c, &mut checker, 20).unwrap();
    assert!(c.integrity_converged(), "{:?}", c.integrity_diff(w));
}

/// The committed scenario files (shrunk failing runs, each fixed since).
fn committed_scenarios() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_scenario_replays_and_holds_every_invariant() {
    let files = committed_scenarios();
    assert!(
        !files.is_empty(),
        "no scenario file under simulator/scenarios/"
    );
    for (name, text) in files {
        let opts = scenario::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Err(f) = run_options(opts) {
            panic!(
                "{name}: {} ({})\n{}",
                f.violation,
                f.violation.invariant(),
                f.recent.join("\n")
            );
        }
    }
}

#[test]
fn a_scenario_file_round_trips_and_bad_files_get_a_clear_error() {
    // Seed 1 draws a bounded send buffer, the others an unbounded one.
    for seed in [0, 1, 27, 132] {
        let opts = SwarmOptions::from_seed(seed);
        assert_eq!(opts.link.send_buffer.is_some(), seed == 1, "seed {seed}");
        let text = scenario::to_text(&opts, "a comment\nover two lines");
        assert_eq!(scenario::parse(&text), Ok(opts), "{text}");
    }
    let good = scenario::to_text(&SwarmOptions::from_seed(1), "");
    let cases = [
        (
            good.replace("workers = ", "workers = x"),
            "workers: bad value",
        ),
        (
            good.replace("pieces = ", "pieces = random:0 #"),
            "pieces: bad value",
        ),
        (
            format!("{good}workers = 2\n"),
            "unknown or repeated key \"workers\"",
        ),
        (
            good.replace("send_buffer = ", "send_buffer = 0 #"),
            "send_buffer: bad value",
        ),
        (
            format!("{good}colour = red\n"),
            "unknown or repeated key \"colour\"",
        ),
        (good.replace("seed = ", "seed "), "expected `key = value`"),
        (
            good.lines()
                .filter(|l| !l.starts_with("stall"))
                .collect::<Vec<_>>()
                .join("\n"),
            "missing key \"stall\"",
        ),
    ];
    for (text, expected) in cases {
        let e = scenario::parse(&text).unwrap_err().to_string();
        assert!(e.contains(expected), "{e} (expected {expected})");
    }
}

#[test]
fn the_shrinker_keeps_what_the_failure_needs_and_drops_the_rest() {
    // A stand-in failure: it needs two workers or more and crashes; nothing else matters.
    let fails = |o: &SwarmOptions| o.workers >= 2 && o.rates.crash > 0;
    let start = (0..)
        .map(SwarmOptions::from_seed)
        .find(|o| {
            fails(o)
                && o.workers > 2
                && o.rates.stall > 0
                && o.agents > 1
                && o.link.send_buffer.is_some()
        })
        .unwrap();
    let failure = |o: &SwarmOptions| {
        Box::new(Failure {
            seed: o.seed,
            violation: Violation::RequestStuck {
                node: "worker1".to_owned(),
            },
            at: VirtualTime::ZERO,
            trace_hash: 0,
            recent: Vec::new(),
        })
    };
    let shrunk = shrink_with(start.clone(), failure(&start), |o| {
        if fails(&o) { Err(failure(&o)) } else { Ok(()) }
    });
    let o = &shrunk.options;
    assert_eq!(o.workers, 2);
    assert!(o.rates.crash > 0);
    assert_eq!((o.agents, o.extra_files, o.stale_files), (0, 0, 0));
    assert_eq!(
        (
            o.rates.stall,
            o.rates.partition,
            o.rates.reset,
            o.rates.effect_failure
        ),
        (0, 0, 0, 0)
    );
    assert_eq!((o.edit_every, o.churn_every), (None, None));
    assert_eq!(o.link.send_buffer, None);
    assert!(shrunk.runs <= wazuh_cluster_sim::shrink::MAX_RUNS);
}

#[test]
fn the_runner_stops_quietly_when_its_output_is_closed() {
    // `vopr --seeds 0..10 | head -1`: the reader goes away; the runner must not panic on the
    // write that finds the pipe closed. Here the read end is closed before the first line.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vopr"))
        .args(["--seeds", "0..10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}
