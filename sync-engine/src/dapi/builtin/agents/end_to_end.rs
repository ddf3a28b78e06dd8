//! The four agent functions end to end through [`BuiltinExecutor`], on one install tree, against
//! the answers of upstream's own code: 3.9.5's `Agent` functions (python3) run on a `global.db`
//! holding the rows `wazuh-modulesd` writes for this tree (its `wm_database.c`, read line by
//! line), at the same `now`, their items put in our key order, and the few exception texts that
//! Python 3.11 words differently put back in Python 3.7's words (upstream's interpreter).
//!
//! The tree: agent 001 reporting to worker1 (its agent-info says so), 002 disconnected for two
//! hours (the master knows it on worker2), 003 never connected (its agent-info file names
//! another address), 004 removed, 005 pending (empty agent-info, a registered network), 006 a
//! Windows agent; an agent-info file of no agent; every daemon running.

use std::collections::BTreeMap;

use super::database::{
    AgentDatabase, AgentDatabaseError, AgentRecord, AgentSource, NoAgentDatabase,
};
use super::table::{AgentRow, AgentTable};
use crate::dapi::BuiltinExecutor;
use crate::dapi::builtin::install::Install;
use crate::dapi::builtin::test_support::{NOW, add, running_daemons};
use crate::dapi::call::ApiCall;
use crate::integrity::memory::MemoryStorage;

fn key(digit: char) -> String {
    std::iter::repeat_n(digit, 64).collect()
}

fn tree() -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    running_daemons(&mut storage);
    add(
        &mut storage,
        "/etc/ossec-init.conf",
        "DIRECTORY=\"/var/ossec\"\nNAME=\"Wazuh\"\nVERSION=\"v3.9.5\"\nTYPE=\"server\"\n",
        0,
    );
    let keys = format!(
        "001 agent-one any {}\n002 agent-two 10.0.0.2 {}\n003 agent-three any {}\n\
         004 !removed any {}\n005 agent-five 10.0.0.0/24 {}\n006 win-agent any {}\n",
        key('1'),
        key('2'),
        key('3'),
        key('4'),
        key('5'),
        key('6')
    );
    add(&mut storage, "/etc/client.keys", keys, 0);
    add(
        &mut storage,
        "/queue/agent-info/agent-one-any",
        "Linux |agent-one |4.15.0-54-generic |#58-Ubuntu SMP |x86_64 [Ubuntu|ubuntu: 18.04.2 LTS \
         (Bionic Beaver)] - Wazuh v3.9.5 / ab73\nfd75 merged.mg\n#\"_agent_ip\":10.0.0.1\n\
         #\"_manager_hostname\":mgr\n#\"_node_name\":worker1\n",
        60,
    );
    add(
        &mut storage,
        "/queue/agent-info/agent-two-10.0.0.2",
        "Linux |agent-two |3.10.0 |#1 SMP |x86_64 [CentOS Linux|centos: 7.6 (Core)] - Wazuh v3.9.4 \
         / cs2\nms2 merged.mg\n",
        7200,
    );
    add(
        &mut storage,
        "/queue/agent-info/agent-three-10.0.0.3",
        "x - y\n",
        0,
    );
    add(
        &mut storage,
        "/queue/agent-info/agent-five-10.0.0.0",
        "",
        100,
    );
    add(
        &mut storage,
        "/queue/agent-info/win-agent-any",
        "Microsoft Windows Server 2016 Datacenter [Ver: 10.0.14393] - Wazuh v3.9.5 / wcs\n\
         wms merged.mg\n#\"_node_name\":master01\n",
        30,
    );
    add(
        &mut storage,
        "/queue/agent-info/ghost-10.9.9.9",
        "x - y\n",
        0,
    );
    add(&mut storage, "/queue/agent-groups/001", "default\n", 0);
    add(
        &mut storage,
        "/queue/agent-groups/002",
        "default,group2\n",
        0,
    );
    add(&mut storage, "/queue/agent-groups/006", "\n", 0);
    add(
        &mut storage,
        "/queue/agents-timestamp",
        "001 agent-one any 2019-07-01 10:00:00\n002 agent-two 10.0.0.2 2019-07-02 11:00:00\n",
        0,
    );
    storage
}

/// What the master knows: where each agent reports (an agent-info `_node_name` line wins).
fn agent_nodes() -> BTreeMap<String, String> {
    [
        ("001", "worker3"),
        ("002", "worker2"),
        ("003", "unknown"),
        ("005", "worker1"),
        ("006", "unknown"),
    ]
    .into_iter()
    .map(|(id, node)| (id.to_owned(), node.to_owned()))
    .collect()
}

fn call(route: &str, framework_function: &'static str, arguments: &str) -> ApiCall {
    crate::dapi::builtin::test_support::call(route, framework_function, arguments, agent_nodes())
}

/// (route, framework function, arguments, upstream's answer).
const CASES: [(&str, &str, &str, &str); 67] = [
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{}"##,
        r##"{"data": {"items": [{"id": "000", "name": "localhost", "ip": "127.0.0.1", "status": "Active", "version": "Wazuh v3.9.5", "node_name": "unknown", "lastKeepAlive": "9999-12-31 23:59:59", "registerIP": "127.0.0.1"}, {"os": {"arch": "x86_64", "codename": "Bionic Beaver", "major": "18", "minor": "04", "name": "Ubuntu", "platform": "ubuntu", "uname": "Linux |agent-one |4.15.0-54-generic |#58-Ubuntu SMP |x86_64", "version": "18.04.2 LTS"}, "id": "001", "name": "agent-one", "ip": "10.0.0.1", "status": "Active", "version": "Wazuh v3.9.5", "manager": "mgr", "dateAdd": "2019-07-01 10:00:00", "group": ["default"], "mergedSum": "fd75", "configSum": "ab73", "node_name": "worker1", "lastKeepAlive": "2019-07-15 09:59:00", "registerIP": "any"}, {"os": {"arch": "x86_64", "codename": "Core", "major": "7", "minor": "6", "name": "CentOS Linux", "platform": "centos", "uname": "Linux |agent-two |3.10.0 |#1 SMP |x86_64", "version": "7.6"}, "id": "002", "name": "agent-two", "ip": "10.0.0.2", "status": "Disconnected", "version": "Wazuh v3.9.4", "manager": "", "dateAdd": "2019-07-02 11:00:00", "group": ["default", "group2"], "mergedSum": "ms2", "configSum": "cs2", "node_name": "worker2", "lastKeepAlive": "2019-07-15 08:00:00", "registerIP": "10.0.0.2"}, {"id": "003", "name": "agent-three", "ip": "any", "status": "Never connected", "node_name": "unknown", "registerIP": "any"}, {"id": "005", "name": "agent-five", "ip": "10.0.0.0/24", "status": "Pending", "manager": "", "node_name": "worker1", "lastKeepAlive": "2019-07-15 09:58:20", "registerIP": "10.0.0.0/24"}, {"os": {"build": "14393", "major": "10", "minor": "0", "name": "Microsoft Windows Server 2016 Datacenter", "platform": "windows", "uname": "Microsoft Windows Server 2016 Datacenter", "version": "10.0.14393"}, "id": "006", "name": "win-agent", "ip": "any", "status": "Active", "version": "Wazuh v3.9.5", "manager": "", "mergedSum": "wms", "configSum": "wcs", "node_name": "master01", "lastKeepAlive": "2019-07-15 09:59:30", "registerIP": "any"}], "totalItems": 6}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"select": {"fields": ["id", "name", "status", "node_name"]}, "sort": {"fields": ["status"], "order": "desc"}}"##,
        r##"{"data": {"items": [{"id": "000", "name": "localhost", "status": "Active", "node_name": "unknown"}, {"id": "006", "name": "win-agent", "status": "Active", "node_name": "master01"}, {"id": "001", "name": "agent-one", "status": "Active", "node_name": "worker1"}, {"id": "005", "name": "agent-five", "status": "Pending", "node_name": "worker1"}, {"id": "002", "name": "agent-two", "status": "Disconnected", "node_name": "worker2"}, {"id": "003", "name": "agent-three", "status": "Never connected", "node_name": "unknown"}], "totalItems": 6}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "os.platform=ubuntu,os.platform=centos;status=active", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "001"}], "totalItems": 1}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": {"status": "active,pending"}, "select": {"fields": ["id", "status"]}}"##,
        r##"{"data": {"items": [{"id": "000", "status": "Active"}, {"id": "001", "status": "Active"}, {"id": "005", "status": "Pending"}, {"id": "006", "status": "Active"}], "totalItems": 4}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"search": {"value": "10.0.0", "negation": 0}, "select": {"fields": ["id", "ip"]}}"##,
        r##"{"data": {"items": [{"id": "001", "ip": "10.0.0.1"}, {"id": "002", "ip": "10.0.0.2"}, {"id": "005", "ip": "10.0.0.0/24"}], "totalItems": 3}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"search": {"value": "worker", "negation": 1}, "select": {"fields": ["id", "node_name"]}}"##,
        r##"{"data": {"items": [{"id": "000", "node_name": "unknown"}, {"id": "003", "node_name": "unknown"}, {"id": "006", "node_name": "master01"}], "totalItems": 3}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"offset": 1, "limit": 2, "sort": {"fields": ["os.version"], "order": "asc"}, "select": {"fields": ["id", "os.version", "os.major"]}}"##,
        r##"{"data": {"items": [{"id": "003"}, {"id": "005"}], "totalItems": 6}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "group=group2", "select": {"fields": ["id", "group"]}}"##,
        r##"{"data": {"items": [{"id": "002", "group": ["default", "group2"]}], "totalItems": 1}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "status!=active", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "000"}, {"id": "002"}, {"id": "003"}, {"id": "005"}], "totalItems": 4}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "(status=never connected,status=pending);id>2", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "003"}, {"id": "005"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "name~agent;version<Wazuhv3.9.5", "select": {"fields": ["id", "version"]}}"##,
        r##"{"data": {"items": [{"id": "002", "version": "Wazuh v3.9.4"}], "totalItems": 1}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "ip=null", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [], "totalItems": 0}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "manager=null", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "000"}, {"id": "003"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "id=all;name=agent-two", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "002"}], "totalItems": 1}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"limit": -1, "offset": 4, "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "005"}, {"id": "006"}], "totalItems": 6}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"limit": null, "select": {"fields": ["id", "registerIP", "dateAdd", "lastKeepAlive", "mergedSum", "configSum", "manager"]}}"##,
        r##"{"data": {"items": [{"id": "000", "lastKeepAlive": "9999-12-31 23:59:59", "registerIP": "127.0.0.1"}, {"id": "001", "manager": "mgr", "dateAdd": "2019-07-01 10:00:00", "mergedSum": "fd75", "configSum": "ab73", "lastKeepAlive": "2019-07-15 09:59:00", "registerIP": "any"}, {"id": "002", "manager": "", "dateAdd": "2019-07-02 11:00:00", "mergedSum": "ms2", "configSum": "cs2", "lastKeepAlive": "2019-07-15 08:00:00", "registerIP": "10.0.0.2"}, {"id": "003", "registerIP": "any"}, {"id": "005", "manager": "", "lastKeepAlive": "2019-07-15 09:58:20", "registerIP": "10.0.0.0/24"}, {"id": "006", "manager": "", "mergedSum": "wms", "configSum": "wcs", "lastKeepAlive": "2019-07-15 09:59:30", "registerIP": "any"}], "totalItems": 6}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"sort": {"fields": [], "order": "desc"}, "select": {"fields": ["id"]}, "limit": 3}"##,
        r##"{"data": {"items": [{"id": "006"}, {"id": "005"}, {"id": "003"}], "totalItems": 6}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"sort": {"fields": ["name"], "order": "DESC"}, "select": {"fields": ["name"]}}"##,
        r##"{"data": {"items": [{"id": "006", "name": "win-agent"}, {"id": "000", "name": "localhost"}, {"id": "002", "name": "agent-two"}, {"id": "003", "name": "agent-three"}, {"id": "001", "name": "agent-one"}, {"id": "005", "name": "agent-five"}], "totalItems": 6}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"search": {"value": "1", "negation": 0}, "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "000"}, {"id": "001"}, {"id": "002"}, {"id": "005"}, {"id": "006"}], "totalItems": 5}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": {"id": ["001", "005", "999"]}, "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "001"}, {"id": "005"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": {"node_name": "worker1", "os.platform": "ubuntu"}, "select": {"fields": ["id"]}, "q": "id<5"}"##,
        r##"{"data": {"items": [{"id": "001"}], "totalItems": 1}, "error": 0}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"limit": 1001}"##,
        r##"{"message": "Specified limit exceeds maximum allowed (1000): 1001", "error": 1405}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"limit": 0}"##,
        r##"{"message": "0 is not a valid limit", "error": 1406}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"limit": "5"}"##,
        r##"{"message": "'>' not supported between instances of 'str' and 'int'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"offset": "abc"}"##,
        r##"{"message": "Error in wazuhdb request: datatype mismatch", "error": 2003}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"offset": [1]}"##,
        r##"{"message": "Error in wazuhdb request: Error binding parameter :offset - probably unsupported type.", "error": 2003}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"select": {"fields": ["foo", "id"]}}"##,
        r##"{"message": "Not a valid select field: Allowed select fields: id, name, ip, status, os.name, os.version, os.platform, version, manager, dateAdd, group, mergedSum, configSum, os.codename, os.major, os.minor, os.uname, os.arch, os.build, node_name, lastKeepAlive, internal_key, registerIP. Fields foo", "error": 1724}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"select": {"fields": ["internal_key"]}}"##,
        r##"{"message": "Not a valid select field: Allowed select fields: id, name, ip, status, os.name, os.version, os.platform, version, manager, dateAdd, group, mergedSum, configSum, os.codename, os.major, os.minor, os.uname, os.arch, os.build, node_name, lastKeepAlive, internal_key, registerIP. Fields internal_key", "error": 1724}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"select": "id"}"##,
        r##"{"message": "'str' object has no attribute 'copy'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"select": {"nope": 1}}"##,
        r##"{"message": "'fields'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "foo=bar"}"##,
        r##"{"message": "Field does not exist.: Available fields: id, name, ip, status, os.name, os.version, os.platform, version, manager, dateAdd, group, mergedSum, configSum, os.codename, os.major, os.minor, os.uname, os.arch, os.build, node_name, lastKeepAlive, internal_key, registerIP. Field: foo", "error": 1408}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "name==x"}"##,
        r##"{"message": "Invalid query operator.: Valid operators: =, !=, <, >, ~. Used operator: ==", "error": 1409}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "=x"}"##,
        r##"{"message": "query does not match expected format: =x", "error": 1407}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "(name=a"}"##,
        r##"{"message": "Error in wazuhdb request: incomplete input", "error": 2003}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "name=a;"}"##,
        r##"{"message": "Error in wazuhdb request: incomplete input", "error": 2003}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "name=a)"}"##,
        r##"{"message": "Error in wazuhdb request: near \")\": syntax error", "error": 2003}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "status=sleeping"}"##,
        r##"{"message": "Agent status not valid. Valid statuses are Active, Disconnected, Pending and Never Connected.: sleeping", "error": 1729}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "dateAdd=2019-07-01"}"##,
        r##"{"message": "Error in wazuhdb request: You did not supply a value for binding 1.", "error": 2003}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "dateAdd=yesterday"}"##,
        r##"{"message": "Date filter not valid. Valid formats are timeframe or YYYY-MM-DD HH:mm:ss: yesterday", "error": 1412}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": "lastKeepAlive=null"}"##,
        r##"{"message": "expected string or bytes-like object", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": {"foo": "x"}}"##,
        r##"{"message": "'foo'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": "older_than"}"##,
        r##"{"message": "string indices must be integers", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": ["a"]}"##,
        r##"{"message": "'list' object has no attribute 'items'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"search": {"value": 5, "negation": 0}}"##,
        r##"{"message": "'int' object has no attribute 'isdigit'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"search": {"value": "x"}}"##,
        r##"{"message": "'negation'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"sort": {"fields": ["name"], "order": "sideways"}}"##,
        r##"{"message": "Error in wazuhdb request: near \"sideways\": syntax error", "error": 2003}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"sort": {"fields": ["name"]}}"##,
        r##"{"message": "'order'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"q": 5}"##,
        r##"{"message": "expected string or bytes-like object", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"colour": 1}"##,
        r##"{"message": "get_agents_overview() got an unexpected keyword argument 'colour'", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": {"status": 5}}"##,
        r##"{"message": "Agent status not valid. Valid statuses are Active, Disconnected, Pending and Never Connected.: 5", "error": 1729}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": {"group": 5}}"##,
        r##"{"message": "can only concatenate str (not \"int\") to str", "error": 1000}"##,
    ),
    (
        "/agents",
        "Agent.get_agents_overview",
        r##"{"filters": {"name": [["x"]]}}"##,
        r##"{"message": "Error in wazuhdb request: Error binding parameter :name$0 - probably unsupported type.", "error": 2003}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": "1"}"##,
        r##"{"data": {"id": "001", "name": "agent-one", "ip": "10.0.0.1", "status": "Active", "os": {"arch": "x86_64", "codename": "Bionic Beaver", "major": "18", "minor": "04", "name": "Ubuntu", "platform": "ubuntu", "uname": "Linux |agent-one |4.15.0-54-generic |#58-Ubuntu SMP |x86_64", "version": "18.04.2 LTS"}, "version": "Wazuh v3.9.5", "manager": "mgr", "dateAdd": "2019-07-01 10:00:00", "group": ["default"], "mergedSum": "fd75", "configSum": "ab73", "node_name": "worker1", "lastKeepAlive": "2019-07-15 09:59:00", "registerIP": "any"}, "error": 0}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": "001", "select": {"fields": ["name", "os.platform", "os.arch"]}}"##,
        r##"{"data": {"name": "agent-one", "os": {"arch": "x86_64", "platform": "ubuntu"}}, "error": 0}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": "6", "select": {"fields": ["name", "os.platform", "os.arch", "group"]}}"##,
        r##"{"data": {"name": "win-agent", "os": {"platform": "windows"}}, "error": 0}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": "000"}"##,
        r##"{"data": {"id": "000", "name": "localhost", "ip": "127.0.0.1", "status": "Active", "version": "Wazuh v3.9.5", "node_name": "unknown", "lastKeepAlive": "9999-12-31 23:59:59", "registerIP": "127.0.0.1"}, "error": 0}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": "3"}"##,
        r##"{"data": {"id": "003", "name": "agent-three", "ip": "any", "status": "Never connected", "node_name": "unknown", "registerIP": "any"}, "error": 0}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": "999"}"##,
        r##"{"message": "Agent does not exist: 999", "error": 1701}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": "6", "select": {}}"##,
        r##"{"message": "'fields'", "error": 1000}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": ["001"]}"##,
        r##"{"message": "query does not match expected format: id=['001']", "error": 1407}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{"agent_id": "1;name=agent-two"}"##,
        r##"{"message": "Agent does not exist: 1;name=agent-two", "error": 1701}"##,
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        r##"{}"##,
        r##"{"message": "get_agent() missing 1 required positional argument: 'agent_id'", "error": 1000}"##,
    ),
    (
        "/agents/name/:agent_name",
        "Agent.get_agent_by_name",
        r##"{"agent_name": "win-agent"}"##,
        r##"{"data": {"id": "006", "name": "win-agent", "ip": "any", "status": "Active", "os": {"build": "14393", "major": "10", "minor": "0", "name": "Microsoft Windows Server 2016 Datacenter", "platform": "windows", "uname": "Microsoft Windows Server 2016 Datacenter", "version": "10.0.14393"}, "version": "Wazuh v3.9.5", "mergedSum": "wms", "configSum": "wcs", "node_name": "master01", "lastKeepAlive": "2019-07-15 09:59:30", "registerIP": "any"}, "error": 0}"##,
    ),
    (
        "/agents/name/:agent_name",
        "Agent.get_agent_by_name",
        r##"{"agent_name": "agent-two", "select": {"fields": ["id", "status", "manager"]}}"##,
        r##"{"data": {"id": "002", "status": "Disconnected"}, "error": 0}"##,
    ),
    (
        "/agents/name/:agent_name",
        "Agent.get_agent_by_name",
        r##"{"agent_name": "nobody"}"##,
        r##"{"message": "Agent does not exist: nobody", "error": 1701}"##,
    ),
    (
        "/agents/name/:agent_name",
        "Agent.get_agent_by_name",
        r##"{"agent_name": ["x"]}"##,
        r##"{"message": "Error in wazuhdb request: Error binding parameter :name - probably unsupported type.", "error": 2003}"##,
    ),
    (
        "/agents/summary",
        "Agent.get_agents_summary",
        r##"{}"##,
        r##"{"data": {"Total": 6, "Active": 3, "Disconnected": 1, "Never connected": 1, "Pending": 1}, "error": 0}"##,
    ),
];

#[test]
fn answers_are_upstreams() {
    let storage = tree();
    let mut failures = Vec::new();
    for (route, function, arguments, expected) in CASES {
        let answer = BuiltinExecutor.run(&storage, &call(route, function, arguments), NOW);
        if answer != expected {
            failures.push(format!(
                "{function} {arguments}\n  ours:   {answer}\n  theirs: {expected}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// Upstream sorts by several fields in the order of a Python set (it changes with each
/// process); here in the order given.
#[test]
fn several_sort_fields_count_in_the_order_given() {
    let answer = BuiltinExecutor.run(
        &tree(),
        &call(
            "/agents",
            "Agent.get_agents_overview",
            r#"{"sort": {"fields": ["status", "name"], "order": "asc"}, "select": {"fields": ["status"]}}"#,
        ),
        NOW,
    );
    assert_eq!(
        answer,
        concat!(
            r#"{"data": {"items": [{"id": "003", "status": "Never connected"}, "#,
            r#"{"id": "002", "status": "Disconnected"}, {"id": "005", "status": "Pending"}, "#,
            r#"{"id": "001", "status": "Active"}, {"id": "006", "status": "Active"}, "#,
            r#"{"id": "000", "status": "Active"}], "totalItems": 6}, "error": 0}"#
        )
    );
}

/// A tree whose keep-alives and registration dates lie the given seconds before [`NOW`].
fn aged_tree() -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    running_daemons(&mut storage);
    add(
        &mut storage,
        "/etc/client.keys",
        "001 a1 any k\n002 a2 any k\n003 a3 any k\n005 a5 any k\n006 a6 any k\n",
        0,
    );
    for (name, age) in [("a1", 60), ("a2", 7200), ("a6", 30)] {
        add(
            &mut storage,
            &format!("/queue/agent-info/{name}-any"),
            "x - y\n",
            age,
        );
    }
    let registered = |id: &str, age: i64| {
        let date = crate::dapi::builtin::time::DateTime::from_unix(NOW.secs - age);
        format!("{id} a any {date}\n")
    };
    let timestamps = [
        registered("001", 3 * 86_400),
        registered("002", 7000),
        registered("003", 2 * 86_400),
        registered("005", 600),
    ]
    .concat();
    add(&mut storage, "/queue/agents-timestamp", timestamps, 0);
    storage
}

/// (arguments, upstream's answer), upstream run with its rows aged the same from its clock.
const TIMEFRAME_CASES: [(&str, &str); 11] = [
    (
        r##"{"filters": {"older_than": "1h"}, "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "002"}, {"id": "003"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        r##"{"filters": {"older_than": "1d"}, "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "003"}], "totalItems": 1}, "error": 0}"##,
    ),
    (
        r##"{"filters": {"older_than": "3600"}, "q": "id>1", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "002"}, {"id": "003"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        r##"{"q": "lastKeepAlive<90s", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "001"}, {"id": "006"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        r##"{"q": "lastKeepAlive>2m", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "002"}], "totalItems": 1}, "error": 0}"##,
    ),
    (
        r##"{"q": "dateAdd>1d2h", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "001"}, {"id": "003"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        r##"{"q": "dateAdd<1h;status=never connected", "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "005"}], "totalItems": 1}, "error": 0}"##,
    ),
    (
        r##"{"q": "lastKeepAlive<1d2x", "select": {"fields": ["id"]}}"##,
        r##"{"message": "'x'", "error": 1000}"##,
    ),
    (
        r##"{"q": "lastKeepAlive<99999999999999999999d", "select": {"fields": ["id"]}}"##,
        r##"{"message": "Error in wazuhdb request: Python int too large to convert to SQLite INTEGER", "error": 2003}"##,
    ),
    (
        r##"{"filters": {"older_than": null}, "select": {"fields": ["id"]}}"##,
        r##"{"data": {"items": [{"id": "000"}, {"id": "001"}, {"id": "002"}, {"id": "003"}, {"id": "005"}, {"id": "006"}], "totalItems": 6}, "error": 0}"##,
    ),
    (
        r##"{"filters": {"older_than": "1h"}, "q": null, "select": {"fields": ["id"]}}"##,
        r##"{"message": "unsupported operand type(s) for +=: 'NoneType' and 'str'", "error": 1000}"##,
    ),
];

/// `older_than`, and timeframes on `lastKeepAlive` / `dateAdd`: relative to `now`, agent 000
/// always left out, the unit table's `KeyError`, an `int` too large to bind.
#[test]
fn timeframes_filter_as_upstreams_do() {
    let storage = aged_tree();
    for (arguments, expected) in TIMEFRAME_CASES {
        let answer = BuiltinExecutor.run(
            &storage,
            &call("/agents", "Agent.get_agents_overview", arguments),
            NOW,
        );
        assert_eq!(answer, expected, "{arguments}");
    }
}

/// A database record holding what `row` holds (what `wazuh-modulesd` wrote to the `global.db`
/// the upstream answers above were computed on).
fn record_of(row: &AgentRow) -> AgentRecord {
    AgentRecord {
        id: row.id,
        name: row.name.clone(),
        ip: row.ip.clone(),
        register_ip: row.register_ip.clone(),
        internal_key: row.internal_key.clone(),
        os_name: row.os.name.clone(),
        os_version: row.os.version.clone(),
        os_major: row.os.major.clone(),
        os_minor: row.os.minor.clone(),
        os_codename: row.os.codename.clone(),
        os_build: row.os.build.clone(),
        os_platform: row.os.platform.clone(),
        os_uname: row.os.uname.clone(),
        os_arch: row.os.arch.clone(),
        version: row.version.clone(),
        config_sum: row.config_sum.clone(),
        merged_sum: row.merged_sum.clone(),
        manager_host: row.manager_host.clone(),
        node_name: row.node_name.clone(),
        date_add: row.date_add.clone(),
        last_keepalive: row.last_keepalive.clone(),
        status: row.status.clone(),
        group: row.group.clone(),
    }
}

/// The records of `tree()` as its database holds them, in reverse order (a database hands
/// them over in any order).
fn database_records() -> Vec<AgentRecord> {
    let storage = tree();
    let nodes = agent_nodes();
    let source = AgentSource {
        database: &NoAgentDatabase,
        agent_nodes: &nodes,
    };
    let table = AgentTable::load(&Install::new(&storage), source).expect("the tree loads");
    table.rows.iter().rev().map(record_of).collect()
}

/// The same rows handed over as a database's answer every case as upstream did, without the
/// master's knowledge (the call carries none: the rows' `node_name` is the truth).
#[test]
fn rows_from_a_database_answer_as_upstreams_do() {
    let storage = tree();
    let records = database_records();
    for (route, function, arguments, expected) in CASES {
        let mut call = call(route, function, arguments);
        call.agent_nodes.clear();
        let answer = BuiltinExecutor.run_with_agents(&storage, &records, &call, NOW);
        assert_eq!(answer, expected, "{function} {arguments}");
    }
}

/// What only a database holds: its `node_name` wins over the master's knowledge and the files,
/// its `status` column is searched, a `NULL` node is left out, a `lastKeepAlive` text is read
/// as upstream reads it (and fails as it fails), and a database that cannot be read is
/// upstream's 2003.
#[test]
fn a_database_is_the_whole_truth() {
    let storage = tree();
    let mut records = database_records();
    for record in &mut records {
        match record.id {
            1 => {
                record.node_name = Some("worker9".into());
                record.status = Some("updated".into());
            }
            3 => record.node_name = None,
            _ => {}
        }
    }
    let overview = |arguments: &str, records: &Vec<AgentRecord>| {
        BuiltinExecutor.run_with_agents(
            &storage,
            records,
            &call("/agents", "Agent.get_agents_overview", arguments),
            NOW,
        )
    };
    assert_eq!(
        overview(
            r#"{"select": {"fields": ["node_name"]}, "q": "id<4"}"#,
            &records
        ),
        r#"{"data": {"items": [{"id": "000", "node_name": "unknown"}, {"id": "001", "node_name": "worker9"}, {"id": "002", "node_name": "worker2"}, {"id": "003"}], "totalItems": 4}, "error": 0}"#
    );
    assert_eq!(
        overview(
            r#"{"search": {"value": "updated", "negation": 0}, "select": {"fields": ["id"]}}"#,
            &records
        ),
        r#"{"data": {"items": [{"id": "001"}], "totalItems": 1}, "error": 0}"#
    );

    let mut garbled = records.clone();
    garbled
        .iter_mut()
        .filter(|record| record.id == 2)
        .for_each(|record| record.last_keepalive = Some("yesterday".into()));
    assert_eq!(
        overview(r#"{"select": {"fields": ["status"]}}"#, &garbled),
        r#"{"message": "invalid literal for int() with base 10: 'yest'", "error": 1000}"#
    );

    struct Unreadable;
    impl AgentDatabase for Unreadable {
        fn agent_records(&self) -> Result<Option<Vec<AgentRecord>>, AgentDatabaseError> {
            Err(AgentDatabaseError("file is not a database".into()))
        }
    }
    let answer = BuiltinExecutor.run_with_agents(
        &storage,
        &Unreadable,
        &call("/agents/summary", "Agent.get_agents_summary", "{}"),
        NOW,
    );
    assert_eq!(
        answer,
        r#"{"message": "Error in wazuhdb request: file is not a database", "error": 2003}"#
    );
}

/// The master's census (`n_active_agents`, and every agent's node to place requests): upstream's
/// `status=active` SQL over the database's rows, grouped by node as stored (agent 000 counts for
/// the node its row names); an install
/// without the database answers upstream's 2000, whatever its files say.
#[test]
fn the_census_counts_the_databases_active_agents_by_node() {
    let storage = tree();
    let mut records = database_records();
    for record in &mut records {
        if record.id == 0 {
            record.node_name = Some("master01".into());
        }
    }
    let census = |database: &dyn AgentDatabase| {
        BuiltinExecutor.run_with_agents(
            &storage,
            database,
            &call("", crate::dapi::builtin::AGENT_CENSUS, "{}"),
            NOW,
        )
    };
    // Active in the cases above: 000, 001 (worker1), 006 (master01).
    assert_eq!(
        census(&records),
        r#"{"data": {"active": {"master01": 2, "worker1": 1}, "nodes": {"000": "master01", "001": "worker1", "002": "worker2", "003": "unknown", "005": "worker1", "006": "master01"}}, "error": 0}"#
    );
    assert_eq!(
        census(&NoAgentDatabase),
        r#"{"message": "No such database file", "error": 2000}"#
    );
}
