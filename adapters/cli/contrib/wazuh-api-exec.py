#!/var/ossec/framework/python/bin/python3
"""Runs one distributed API call of a wazuh-cluster-rs node with a Wazuh 3.9.5 install's framework.

    wazuh-cluster node --wazuh-path /var/ossec --api-exec /var/ossec/framework/scripts/wazuh-api-exec.py

    echo '{"function": "/agents/summary", "arguments": {}, "from_cluster": false}' \
        | /var/ossec/framework/scripts/wazuh-api-exec.py
    {"data": {"Total": 1, "Active": 1, "Disconnected": 0, "Never connected": 0, "Pending": 0}, "error": 0}

A wazuh-cluster-rs node replaces 3.9.5's wazuh-clusterd, whose distributed API ran the calls that
landed on its node with the install's Python framework (DistributedAPI.execute_local_request).
The node runs this program for each such call (node --api-exec): the request on standard input,
{"function": ROUTE, "arguments": {...}, "from_cluster": ...}, and one JSON answer on standard
output, in 3.9.5's print_json shape:

    {"data": RESULT, "error": 0}             the route's function returned RESULT
    {"message": e.message, "error": e.code}  it raised a WazuhException
    {"message": str(e), "error": 1000}       anything else went wrong (unknown route, bad input)

As 3.9.5 does, the function is the one wazuh.cluster.dapi.requests_list.functions names for the
route, called with the arguments minus wait_for_complete (awaited when the table marks it
is_async), after the check that the Wazuh daemons the API needs are running (the same
exceptions as 3.9.5: 1017 restarting, 1018 stopped, 1019 failed). Objects in the result are
written with their to_dict(), as print_json does. The exit status is 0 whenever an answer was
printed; the node applies the call's time limit and kills the program after it.

Install: copy it next to the framework's scripts, owned by root, mode 0750. The shebang is the
3.9.5 install's own Python; WAZUH_PATH (default /var/ossec, as the framework's wrapper script
reads it) names another install root. The request's own "ossec_path", if any, is not used: the
install is the node's, not the caller's to choose.
"""

import asyncio
import json
import os
import sys

WAZUH_PATH = os.environ.get('WAZUH_PATH', '/var/ossec')

# The install's framework first, so that no other 'wazuh' package on the path answers instead.
sys.path.insert(0, os.path.join(WAZUH_PATH, 'framework'))

# Routes that run even when the daemons the API needs are not all running (3.9.5's
# check_wazuh_status skips them: they are how an operator sees that state).
STATUS_ROUTES = ('/manager/status', '/cluster/:node_id/status')
# The daemons 3.9.5's API needs, and what each bad state of one of them raises, in the order
# 3.9.5 looks for them.
NEEDED_DAEMONS = ('wazuh-modulesd', 'ossec-remoted', 'ossec-analysisd', 'ossec-execd', 'wazuh-db')
BAD_STATES = (('failed', 1019), ('restarting', 1017), ('stopped', 1018))


def print_json_text(data, error=0):
    """The answer as 3.9.5's DistributedAPI.print_json writes it (not pretty)."""
    def to_dict_of(obj):
        # 3.9.5's hook calls to_dict(); for an object without one it builds an error answer it
        # then drops, so such an object is written as null. The same here.
        to_dict = getattr(obj, 'to_dict', None)
        return to_dict() if to_dict is not None else None

    key = 'message' if error else 'data'
    return json.dumps({key: data, 'error': error}, default=to_dict_of)


def check_needed_daemons(route, manager, WazuhException):
    """Raises 3.9.5's WazuhException when a daemon the API needs is failed, restarting or stopped."""
    if route in STATUS_ROUTES:
        return
    statuses = manager.status()
    states = tuple(statuses[daemon] for daemon in NEEDED_DAEMONS)
    for state, code in BAD_STATES:
        if state in states:
            raise WazuhException(code, states)


def call(request):
    """Runs the request's route with the framework; its result."""
    from wazuh import Wazuh, manager
    from wazuh.cluster.dapi import requests_list

    # What wazuh-clusterd did at start-up: the framework's paths for this install.
    Wazuh(ossec_path=WAZUH_PATH, get_init=True)
    route = request['function']
    entry = requests_list.functions[route]
    from wazuh.exception import WazuhException
    check_needed_daemons(route, manager, WazuhException)
    arguments = dict(request.get('arguments') or {})
    arguments.pop('wait_for_complete', None)
    result = entry['function'](**arguments)
    if entry.get('is_async'):
        result = asyncio.run(result)
    return result


def answer(request_text):
    """The answer to one request, as the JSON text to print."""
    try:
        from wazuh.exception import WazuhException
    except Exception as e:  # no usable framework: nothing can be called
        return print_json_text(str(e), 1000)
    try:
        request = json.loads(request_text)
        if not isinstance(request, dict):
            raise ValueError('the request is a JSON {}, not an object'.format(type(request).__name__))
        return print_json_text(call(request))
    except WazuhException as e:
        return print_json_text(e.message, e.code)
    except Exception as e:
        return print_json_text(str(e), 1000)


def main():
    # The answer must be the only thing on standard output: whatever the framework (or a program
    # it starts) writes there goes to standard error, which the node logs.
    answer_out = os.fdopen(os.dup(sys.stdout.fileno()), 'w')
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    text = answer(sys.stdin.read())
    answer_out.write(text + '\n')
    answer_out.flush()


if __name__ == '__main__':
    main()
