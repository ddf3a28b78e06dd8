//! One `queue/agent-info/<name>-<address>` file read as 3.9.5's `wazuh-modulesd` reads it into
//! the agent database (`wm_database.c` `wm_sync_agentinfo`), byte for byte: C string functions
//! on `fgets` lines (a NUL ends a line's text), the first `" / "` and `" - "` of the first
//! line, and the database's text read back by the framework as UTF-8 with undecodable bytes
//! dropped.
//!
//! ```text
//! Linux |host |4.15.0 |#58 |x86_64 [Ubuntu|ubuntu: 18.04.2 LTS (Bionic Beaver)] - Wazuh v3.9.5 / ab73
//! fd75 merged.mg
//! #"_agent_ip":10.0.0.1
//! → os: uname "Linux |host |4.15.0 |#58 |x86_64", name "Ubuntu", platform "ubuntu",
//!       version "18.04.2 LTS", codename "Bionic Beaver", major "18", minor "04", arch "x86_64";
//!   version "Wazuh v3.9.5", config sum "ab73", merged sum "fd75", agent ip "10.0.0.1"
//! ```

/// `OS_MAXSTR`: `fgets` reads at most one byte less than this per line.
const LINE_BUFFER: usize = 65_536;

/// Bytes kept of the `_agent_ip` line (`char agent_ip[16]`).
const AGENT_IP_LEN: usize = 15;

/// Bytes kept of the `_manager_hostname` and `_node_name` lines (`char [512]`).
const HOST_LEN: usize = 511;

/// The architectures `wm_get_os_arch` looks for, in its order.
const ARCHITECTURES: [&str; 9] = [
    "x86_64", "i386", "i686", "sparc", "amd64", "ia64", "AIX", "armv6", "armv7",
];

/// The `os_*` columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct OsColumns {
    pub(super) name: Option<String>,
    pub(super) version: Option<String>,
    pub(super) major: Option<String>,
    pub(super) minor: Option<String>,
    pub(super) codename: Option<String>,
    pub(super) build: Option<String>,
    pub(super) platform: Option<String>,
    pub(super) uname: Option<String>,
    pub(super) arch: Option<String>,
}

/// What `wdb_update_agent_version` stores from one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AgentInfo {
    pub(super) os: OsColumns,
    pub(super) version: Option<String>,
    pub(super) config_sum: Option<String>,
    pub(super) merged_sum: Option<String>,
    /// `""` when the file names no manager.
    pub(super) manager_host: String,
    /// `None` when the file has no `_node_name` line (upstream then stores `unknown`).
    pub(super) node_name: Option<String>,
    /// The `ip` column's new value (`None`: left as it was).
    pub(super) agent_ip: Option<String>,
}

/// The file's content read as upstream reads it; `None` when upstream gives up on it (a first
/// line without a newline, or without `" - "`), storing nothing.
pub(super) fn parse(bytes: &[u8]) -> Option<AgentInfo> {
    let mut lines = fgets_lines(bytes, LINE_BUFFER);
    let Some(header) = lines.next() else {
        // "Empty file: agent is pending."
        return Some(AgentInfo::default());
    };
    let header = c_str(header);
    let mut os = &header[..find(header, b"\n")?];
    let mut info = AgentInfo::default();
    if let Some(at) = find(os, b" / ") {
        info.config_sum = Some(text(&os[at + 3..]));
        os = &os[..at];
    }
    let at = find(os, b" - ")?;
    info.version = Some(text(&os[at + 3..]));
    os = &os[..at];
    info.os = os_columns(os);

    for line in lines.by_ref() {
        let line = c_str(line);
        if matches!(line.first(), Some(b'"' | b'!') | None) {
            continue;
        }
        if let Some(space) = line.iter().position(|b| *b == b' ')
            && &line[space + 1..] == b"merged.mg\n"
        {
            info.merged_sum = Some(text(&line[..space]));
            break;
        }
    }
    for line in lines {
        let line = c_str(line);
        if let Some(value) = line.strip_prefix(b"#\"_agent_ip\":") {
            info.agent_ip = Some(text(up_to_newline(value, AGENT_IP_LEN)));
        }
        if let Some(value) = line.strip_prefix(b"#\"_manager_hostname\":") {
            info.manager_host = text(up_to_newline(value, HOST_LEN));
        }
        if let Some(value) = line.strip_prefix(b"#\"_node_name\":") {
            info.node_name = Some(text(up_to_newline(value, HOST_LEN)));
        }
    }
    info.agent_ip = info.agent_ip.filter(|ip| !ip.is_empty());
    Some(info)
}

/// The `os_*` columns of the first line's part before `" - "`.
fn os_columns(os: &[u8]) -> OsColumns {
    let mut columns = OsColumns::default();
    if let Some(at) = find(os, b" [Ver: ") {
        // Windows: `<name> [Ver: <major>.<minor>.<build>]`.
        let name = &os[..at];
        let version = drop_last(&os[at + 7..]);
        columns.major = leading_number(version, 0);
        columns.minor = leading_number(version, 1);
        columns.build = leading_number(version, 2);
        columns.version = Some(text(version));
        columns.name = Some(text(name));
        columns.uname = Some(text(name));
        columns.platform = Some("windows".to_owned());
        return columns;
    }
    let mut uname = os;
    if let Some(at) = find(os, b" [") {
        uname = &os[..at];
        let mut name = &os[at + 2..];
        if let Some(colon) = find(name, b": ") {
            let mut version = drop_last(&name[colon + 2..]);
            name = &name[..colon];
            if let Some(paren) = find(version, b" (") {
                columns.codename = Some(text(drop_last(&version[paren + 2..])));
                version = &version[..paren];
            }
            columns.major = leading_number(version, 0);
            columns.minor = leading_number(version, 1);
            columns.version = Some(text(version));
        } else {
            name = drop_last(name);
        }
        if let Some(bar) = name.iter().position(|b| *b == b'|') {
            columns.platform = Some(text(&name[bar + 1..]));
            name = &name[..bar];
        }
        columns.name = Some(text(name));
    }
    columns.arch = Some(
        ARCHITECTURES
            .iter()
            .find(|arch| find(uname, arch.as_bytes()).is_some())
            .map_or_else(String::new, |arch| (*arch).to_owned()),
    );
    columns.uname = Some(text(uname));
    columns
}

/// The `index`-th dot-separated number of `version` when every one before it is there too:
/// `^([0-9]+)`, `^[0-9]+\.([0-9]+)`, `^[0-9]+\.[0-9]+\.([0-9]+)`.
fn leading_number(version: &[u8], index: usize) -> Option<String> {
    let mut rest = version;
    for i in 0..=index {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        if i == index {
            return Some(text(&rest[..digits]));
        }
        rest = rest[digits..].strip_prefix(b".")?;
    }
    None
}

/// The lines `fgets(buf, size, fp)` returns: each up to and with its `\n`, at most `size - 1`
/// bytes.
pub(super) fn fgets_lines(bytes: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let max = rest.len().min(size - 1);
        let end = rest[..max]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(max, |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// A line as C string functions see it: up to its first NUL.
pub(super) fn c_str(line: &[u8]) -> &[u8] {
    line.iter()
        .position(|b| *b == 0)
        .map_or(line, |nul| &line[..nul])
}

/// `strstr`: where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The text with its last byte overwritten by a NUL (`*(s + strlen(s) - 1) = '\0'`).
fn drop_last(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().saturating_sub(1)]
}

/// `strncpy(dst, value, len)` then cut at the first `\n`.
fn up_to_newline(value: &[u8], len: usize) -> &[u8] {
    let value = &value[..value.len().min(len)];
    value
        .iter()
        .position(|b| *b == b'\n')
        .map_or(value, |nl| &value[..nl])
}

/// The database's text as the framework reads it back: UTF-8, undecodable bytes dropped.
pub(super) fn text(bytes: &[u8]) -> String {
    bytes.utf8_chunks().map(|chunk| chunk.valid()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    /// Expected columns from upstream's `wm_sync_agentinfo` as its C code splits these lines
    /// (and, for the recorded file, the fields the recorded 3.9.5 API showed).
    #[test]
    fn linux_agent_info_as_recorded() {
        let file = b"Linux |agent-one |4.15.0-54-generic |#58-Ubuntu SMP |x86_64 [Ubuntu|ubuntu: 18.04.2 LTS (Bionic Beaver)] - Wazuh v3.9.5 / ab73af41699f13fdd81903b5f23d8d00\n\
fd756ba04d9c32c8848d4608bec41251 merged.mg\n#\"_agent_ip\":10.0.0.1\n";
        let info = parse(file).unwrap();
        assert_eq!(
            info.os,
            OsColumns {
                name: some("Ubuntu"),
                version: some("18.04.2 LTS"),
                major: some("18"),
                minor: some("04"),
                codename: some("Bionic Beaver"),
                build: None,
                platform: some("ubuntu"),
                uname: some("Linux |agent-one |4.15.0-54-generic |#58-Ubuntu SMP |x86_64"),
                arch: some("x86_64"),
            }
        );
        assert_eq!(info.version, some("Wazuh v3.9.5"));
        assert_eq!(info.config_sum, some("ab73af41699f13fdd81903b5f23d8d00"));
        assert_eq!(info.merged_sum, some("fd756ba04d9c32c8848d4608bec41251"));
        // The `_agent_ip` line comes after `merged.mg`: read.
        assert_eq!(info.agent_ip, some("10.0.0.1"));
        assert_eq!(info.manager_host, "");
        assert_eq!(info.node_name, None);
    }

    #[test]
    fn windows_and_odd_agent_info() {
        let info = parse(
            b"Microsoft Windows 10 Pro [Ver: 10.0.17134] - Wazuh v3.9.5\n\
x merged.mg\n#\"_manager_hostname\":mgr\n#\"_node_name\":worker-1\n",
        )
        .unwrap();
        assert_eq!(info.os.name, some("Microsoft Windows 10 Pro"));
        assert_eq!(info.os.uname, some("Microsoft Windows 10 Pro"));
        assert_eq!(info.os.version, some("10.0.17134"));
        assert_eq!(
            (info.os.major, info.os.minor, info.os.build),
            (some("10"), some("0"), some("17134"))
        );
        assert_eq!(info.os.platform, some("windows"));
        assert_eq!(info.os.arch, None);
        assert_eq!(info.config_sum, None);
        assert_eq!(info.manager_host, "mgr");
        assert_eq!(info.node_name, some("worker-1"));

        // Without ` [`: no name, an empty architecture.
        let plain = parse(b"Darwin box - Wazuh v3.9.5\n").unwrap();
        assert_eq!(plain.os.name, None);
        assert_eq!(plain.os.arch, some(""));
        assert_eq!(plain.os.uname, some("Darwin box"));
        // No `merged.mg` line: the lines after it are never read.
        let no_merged = parse(b"a - v\n#\"_agent_ip\":10.0.0.9\n").unwrap();
        assert_eq!(no_merged.agent_ip, None);

        assert_eq!(parse(b""), Some(AgentInfo::default()));
        assert_eq!(parse(b"no newline - v"), None);
        assert_eq!(parse(b"no version\n"), None);
        // A NUL ends the C string before the newline.
        assert_eq!(parse(b"a - v\0\n"), None);
    }

    #[test]
    fn fgets_cuts_long_lines() {
        let lines: Vec<&[u8]> = fgets_lines(b"abcdef\ngh", 4).collect();
        assert_eq!(lines, [&b"abc"[..], b"def", b"\n", b"gh"]);
    }
}
