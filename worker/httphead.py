"""The compiled read of whole, plain HTTP/1.1 messages (`ext/httphead.pyx`), or None.

`scan(data, start, max_head, max_headers, max_body)` → `(method, target, headers, body,
end)` of the request at `data[start:]`; `scan_response(data, start, max_body)` →
`(status, headers, body, end)`; either None when the message is cut off or anything but
plain. Callers hand what it does not read to httptools, which reads everything and does
every refusal; when the extension is absent, both are None and httptools reads it all.
"""

from __future__ import annotations

from collections.abc import Callable

Headers = list[tuple[bytes, bytes]]
ScanRequest = Callable[[bytes, int, int, int, int], tuple[bytes, bytes, Headers, bytes, int] | None]
ScanResponse = Callable[[bytes, int, int], tuple[int, Headers, bytes, int] | None]

scan: ScanRequest | None
scan_response: ScanResponse | None

try:
    from worker import _httphead
except ImportError:  # pragma: no cover - the extension is part of the install
    scan = scan_response = None
else:
    scan = _httphead.scan
    scan_response = _httphead.scan_response
