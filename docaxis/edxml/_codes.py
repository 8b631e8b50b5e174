"""Code lists of the standard (danh mục mã), with Vietnamese and English labels.

``standards/codelists.json`` is generated from these tables (see ``_schemagen``).
"""

from __future__ import annotations

from typing import Final, NamedTuple


class CodeLabel(NamedTuple):
    vi: str
    en: str


STATUS_CODES: Final[dict[str, CodeLabel]] = {
    "01": CodeLabel("Đã đến", "Arrived: received by the document system, not yet processed"),
    "02": CodeLabel("Từ chối tiếp nhận", "Rejected (also: refusal of a recall)"),
    "03": CodeLabel("Đã tiếp nhận", "Accepted and registered"),
    "04": CodeLabel("Phân công", "Assigned for handling"),
    "05": CodeLabel("Đang xử lý", "Being processed"),
    "06": CodeLabel("Hoàn thành", "Completed"),
    "13": CodeLabel("Lấy lại", "Sender asks to recall"),
    "15": CodeLabel("Đồng ý lấy lại / cập nhật", "Recall or update accepted"),
    "16": CodeLabel("Từ chối lấy lại / cập nhật", "Recall or update rejected"),
}

BUSINESS_DOC_TYPES: Final[dict[int, CodeLabel]] = {
    0: CodeLabel("Văn bản mới", "New document"),
    1: CodeLabel("Thu hồi", "Recall"),
    2: CodeLabel("Cập nhật", "Update"),
    3: CodeLabel("Thay thế", "Replace"),
}

PRIORITIES: Final[dict[int, CodeLabel]] = {
    0: CodeLabel("Thường", "Normal"),
    1: CodeLabel("Khẩn", "Urgent"),
    2: CodeLabel("Thượng khẩn", "Very urgent"),
    3: CodeLabel("Hỏa tốc", "Express"),
    4: CodeLabel("Hỏa tốc hẹn giờ", "Express, timed"),
}

STEERING_TYPES: Final[dict[int, CodeLabel]] = {
    0: CodeLabel("Không phải văn bản chỉ đạo", "Not a steering document"),
    1: CodeLabel("Văn bản chỉ đạo", "Steering document"),
    2: CodeLabel("Báo cáo thực hiện chỉ đạo", "Report on a steering document"),
}
