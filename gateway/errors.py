"""Exceptions of the gateway.

GatewayError
 +-- ConfigError            a setting is missing or invalid; names the key
 +-- StoreError             the store could not be written or read
 |    +-- SpoolWriteFailed  a mail's raw bytes were not stored; do not acknowledge
 +-- InvalidInput           a command's input is invalid; names the value
 |    +-- CaseNotFound      no case has the given number
 +-- DeliveryError          the relay did not take an outbound mail
 +-- MailboxError           an IMAP mailbox could not be read; names the mailbox
      +-- CommandRefused    the IMAP server answered NO or BAD
"""


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A setting is missing or invalid; the message names the key and the fix."""


class StoreError(GatewayError):
    """The store could not be read or written."""


class SpoolWriteFailed(StoreError):
    """Storing a mail's raw bytes failed; the mail must not be acknowledged."""


class InvalidInput(GatewayError):
    """A command's input (a number, a file, an option) is invalid or names nothing."""


class InputUnreadable(InvalidInput):
    """An input file is missing or cannot be read."""


class CaseNotFound(InvalidInput):
    """No case has the given number."""

    def __init__(self, case_number: str) -> None:
        super().__init__(f"case {case_number} not found")
        self.case_number = case_number


class DeliveryError(GatewayError):
    """The relay did not accept an outbound mail.

    ``permanent`` is true for a 5xx reply, which retrying cannot fix.
    """

    def __init__(
        self, message: str, *, permanent: bool, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class MailboxError(GatewayError):
    """Reading an IMAP mailbox failed: no connection, a failed command, a timeout.

    ``mailbox`` is ``user@host:port/folder``. Mail not yet stored stays on
    the server, unflagged, and is read again on the next try.
    """

    def __init__(self, mailbox: str, message: str) -> None:
        super().__init__(f"mailbox {mailbox}: {message}")
        self.mailbox = mailbox


class CommandRefused(MailboxError):
    """The IMAP server replied NO or BAD to a command.

    The connection is still usable, unlike after a timeout or a dropped
    connection; trying the same command again usually fails the same way.
    """
