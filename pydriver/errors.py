"""The driver's one error type: a kernel-style errno with a reason.

Handlers raise DriverError(errno.EINVAL, "why"); the dispatcher turns it into
-errno for the caller and logs the reason at debug level.  Any other
exception escaping a handler is a driver bug: logged with its traceback and
returned as EIO, so the host process never dies because of the driver.
"""

import errno as _errno


class DriverError(Exception):
    def __init__(self, err: int, message: str = ""):
        super().__init__(message or _errno.errorcode.get(err, str(err)))
        self.errno = err

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno))
        return f"{name}: {self.args[0]}"


def fail(err: int, message: str) -> DriverError:
    """For ``raise fail(EINVAL, ...)`` at the point of detection."""
    return DriverError(err, message)
