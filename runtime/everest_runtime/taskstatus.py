"""The task's status channel, as the runner holds it: its own messages and the
model's (relayed from the model's sessions, or from status-prefixed lines)
go to the agent redacted; the model's last word is remembered apart from the
runner's, so the runner never replaces it with a summary of its own."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from . import agentproto, redact

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .relay import Relay
    from .status import StatusClient

LOCAL_TASK_ID = "local"


class TaskStatus:
    def __init__(self, secrets: list[str], log: Callable[[str], None]) -> None:
        self.secrets = secrets
        self._log = log
        self.last = ""  # the last message sent, from either side: status.txt
        self.model_last = ""  # the model's own last word
        self.client: StatusClient | None = None
        self.relay: Relay | None = None
        self._lock = threading.Lock()
        self._local_vars: dict[str, str] = {}
        self.agent = agentproto.agent_from_env()
        if self.agent is not None:
            try:
                from .status import StatusClient

                self.client = StatusClient(*self.agent, log=log, secrets=secrets)
                self.client.on_var(self._var_from_agent)
            except Exception as exc:  # the status channel must never stop the task
                log(f"status forwarding unavailable ({exc}); statuses go to stderr")

    # -- the runner's side --------------------------------------------------

    def send(self, message: str, echo: bool = True) -> None:
        """The runner's own status. Without an agent it goes to stderr unless
        ``echo`` is off (errors, which the CLI prints anyway)."""
        self._send(message, echo, own=True)

    def model_env(self) -> dict[str, str]:
        """EVEREST_AGENT_* for the model: the relay, when it could start."""
        try:
            from .relay import Relay

            relay = Relay(self._from_model_session, self._log)
        except Exception as exc:
            self._log(f"status relay unavailable ({exc}); the model talks to the agent directly")
            return {}
        self.relay = relay
        task_id = self.agent[2] if self.agent is not None else LOCAL_TASK_ID
        return {
            "EVEREST_AGENT_ADDRESS": "127.0.0.1",
            "EVEREST_AGENT_PORT": str(relay.port),
            "EVEREST_AGENT_TASK_ID": task_id,
        }

    def stop_relay(self, timeout: float = 0.5) -> None:
        if self.relay is not None:
            self.relay.close(timeout)

    def close(self, timeout: float) -> bool:
        """Deliver what is queued within ``timeout`` and end the session; True
        when the agent confirmed everything (or there is no agent)."""
        self.stop_relay(min(timeout, 0.5))
        if self.client is None:
            return True
        try:
            delivered = self.client.close(max(timeout, 0.05))
            if not delivered:
                self._log("the agent did not confirm every status before exit")
            return delivered
        except Exception as exc:
            self._log(f"closing the status channel failed ({exc})")
            return False

    @property
    def agent_connected(self) -> bool:
        return self.client is not None and self.client.connected

    # -- the model's side ---------------------------------------------------

    def from_model(self, message: str) -> None:
        """A status the model sent (a prefixed line or a relayed frame)."""
        self._send(message, True, own=False)

    def _from_model_session(self, text: str) -> None:
        if text.startswith("VAR_GET "):
            self._var_request(text)
        elif text.startswith("VAR_SET_MD "):
            _, name, value = ([*text.split(" ", 2), ""])[:3]
            text = agentproto.var_set(name, redact.text(value, self.secrets))
            with self._lock:
                self._local_vars[name] = value
            if self.client is not None:
                self.client.forward(text)
        else:
            self.from_model(text)

    def _var_request(self, text: str) -> None:
        if self.client is not None:
            self.client.forward(text)
            return
        # No agent (a local run): answer from what the model itself set.
        name = text[len("VAR_GET ") :]
        with self._lock:
            value = self._local_vars.get(name)
        if self.relay is not None:
            self.relay.push(agentproto.var_value(name, value))

    def _var_from_agent(self, name: str, value: str | None) -> None:
        if self.relay is not None:
            self.relay.push(agentproto.var_value(name, value))

    def _send(self, message: str, echo: bool, own: bool) -> None:
        message = redact.text(str(message).strip(), self.secrets)
        if not message:
            return
        with self._lock:
            self.last = message
            if not own:
                self.model_last = message
        if self.client is not None:
            self.client.send(message)
        elif echo:
            self._log(f"status: {message}")


def token_variables() -> list[str]:
    """Variables that hold the GitLab token: never passed on to the model."""
    names = [redact.GITLAB_TOKEN_ENV]
    chosen = os.environ.get("EVEREST_GITLAB_TOKEN_ENV", "").strip()
    if chosen and chosen not in names:
        names.append(chosen)
    return names
