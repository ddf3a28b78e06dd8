//! `wazuh-cluster`: the operator's command (demo, node, control, wire, integrity).

fn main() {
    eprintln!("wazuh-cluster: no subcommand is implemented yet");
    std::process::exit(2);
}
