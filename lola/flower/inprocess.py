"""Run a ServerApp and its ClientApps in one process, without Ray or a SuperLink.

:class:`InProcessGrid` is a Flower :class:`~flwr.serverapp.Grid` that delivers each message to
the ClientApp of its node by calling it, the way a SuperNode calls it: with the node's
:class:`~flwr.app.Context` (node config, run config, a state that lives as long as the node), an
exception raised by the ClientApp turned into an error reply with Flower's
``CLIENT_APP_RAISED_EXCEPTION`` code and ``<class '...'>:<'...'>`` reason. Messages and replies
cross as Flower would send them: every object of the message tree is deflated to bytes and the
receiver inflates its own copy, so nothing is shared between the server and a client, and the
bytes each reply took on that wire are recorded (:attr:`InProcessGrid.reply_bytes`).

This is the one module that uses Flower internals (pinned to the flwr 1.41-1.42 series, which this module is tested on):
``flwr.supercore.task_identity.TaskIdentity`` (Message() needs the sending task's identity),
``flwr.supercore.run.Run`` (the Grid's run), ``flwr.common.constant.ErrorCode`` and
``flwr.supercore.inflatable`` (the wire format). Flower's own simulation engine
(``flwr.simulation.run_simulation``, which needs Ray) and a real deployment run the very same apps.
"""
from __future__ import annotations

import traceback

try:
    from flwr.app import Context, Error, Message, RecordDict
    from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
    from flwr.serverapp import Grid
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
    from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity
except ImportError:  # without the flower extra the module imports (for the docs), but cannot run
    Grid = object

__all__ = ["InProcessGrid", "run_in_process"]

_FIRST_NODE_ID = 1001  # node ids of the clients; Flower's SuperLink is node 1


def _send(message) -> tuple:
    """The receiver's copy of ``message`` and the bytes of its deflated objects."""
    objects = get_all_nested_objects(message)
    contents = {object_id: obj.deflate() for object_id, obj in objects.items()}
    size = sum(len(content) for content in contents.values())
    copy = inflate_object_from_contents(message.object_id, contents)
    copy.metadata.__dict__["_message_id"] = message.metadata.message_id  # not on the wire
    return copy, size


class InProcessGrid(Grid):
    """A Grid whose nodes are ClientApp calls in this process (module docstring).

    ``node_configs`` gives one node config per node; the nodes get ids 1001, 1002, ... in that
    order. Messages run one after the other, in the order they are pushed.
    """

    def __init__(self, client_app, node_configs, run_config=None, *, run_id: int = 1):
        from . import require_flower

        require_flower()
        self.client_app = client_app
        self._run = Run.create_empty(run_id)
        self._contexts = {
            _FIRST_NODE_ID + index: Context(run_id=run_id, node_id=_FIRST_NODE_ID + index,
                                            node_config=dict(config), state=RecordDict(),
                                            run_config=dict(run_config or {}))
            for index, config in enumerate(node_configs)}
        self._replies = {}
        self.reply_bytes = {}        # message id -> bytes of its reply on the wire
        self.client_tracebacks = {}  # node id -> traceback of the last exception it raised

    @property
    def node_configs(self) -> dict:
        """``{node id: node config}`` of the nodes of this grid."""
        return {node: dict(context.node_config) for node, context in self._contexts.items()}

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None):
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self):
        return list(self._contexts)

    def push_messages(self, messages):
        ids = []
        for message in messages:
            # As Flower's HTTP grid: a message's id is its object id.
            message.metadata.__dict__["_message_id"] = message.object_id
            ids.append(message.metadata.message_id)
            delivered, _ = _send(message)
            reply = self._call(delivered)
            reply.metadata.__dict__["_message_id"] = reply.object_id
            received, size = _send(reply)
            self._replies[message.metadata.message_id] = received
            self.reply_bytes[message.metadata.message_id] = size
        return ids

    def _call(self, message):
        node = message.metadata.dst_node_id
        context = self._contexts.get(node)
        if context is None:
            return Message(Error(code=ErrorCode.NODE_UNAVAILABLE,
                                 reason=f"no node {node} in this grid"), reply_to=message)
        try:
            return self.client_app(message, context)
        except Exception as err:  # as a SuperNode does: the error goes back as the reply
            self.client_tracebacks[node] = traceback.format_exc()
            reason = str(type(err)) + ":<'" + str(err) + "'>"
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason),
                           reply_to=message)

    def pull_messages(self, message_ids):
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(self, messages, *, timeout: float | None = None):
        return self.pull_messages(self.push_messages(list(messages)))


def run_in_process(server_app, client_app, node_configs, run_config=None, *,
                   run_id: int = 1) -> InProcessGrid:
    """Run ``server_app`` on an :class:`InProcessGrid` of ``client_app`` nodes; return the grid.

    Whatever the ServerApp raises propagates.
    """
    grid = InProcessGrid(client_app, node_configs, run_config, run_id=run_id)
    TaskIdentity.task_id, TaskIdentity.run_id = 1, run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    context = Context(run_id=run_id, node_id=SUPERLINK_NODE_ID, node_config={},
                      state=RecordDict(), run_config=dict(run_config or {}))
    server_app(grid, context)
    return grid
