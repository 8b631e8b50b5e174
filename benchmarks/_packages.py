"""Deterministic sample packages of a given size for benchmarks."""

from __future__ import annotations

import datetime as dt
import random

from docaxis.edxml import DocumentBuilder, Organization, OtherInfo, write


def document_of_size(target_bytes: int, *, seed: int = 7) -> bytes:
    """A realistic document package (2 recipients, one attachment) of about this size."""
    rng = random.Random(seed)
    header_only = _build(b"")
    room = max(0, target_bytes - len(header_only))
    attachment = rng.randbytes(room * 3 // 4)
    return _build(attachment)


def _build(attachment: bytes) -> bytes:
    builder = (
        DocumentBuilder()
        .sender(Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ",
                             organ_add="Số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội",
                             email="vpcp@chinhphu.vn", telephone="080 43100"))
        .recipient(Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An",
                                email="nghean@gov.vn"))
        .recipient(Organization(organ_id="000.00.00.H14", organ_name="UBND tỉnh Cao Bằng",
                                email="caobang@gov.vn"))
        .code("7816", "VPCP-TTĐT")
        .promulgation(dt.date(2024, 5, 2), place="Hà Nội")
        .document_type(1, "Công văn", detail=0)
        .subject("V/v kết nối, liên thông phần mềm quản lý văn bản")
        .signer("Nguyễn Văn A", position="Bộ trưởng", competence="KT. BỘ TRƯỞNG")
        .other_info(OtherInfo(priority=1, sphere_of_promulgation="Liên thông văn bản quốc gia",
                              promulgation_amount=2, page_amount=3, direction=False))
        .steering_type(1)
        .trace_time(dt.datetime(2024, 5, 2, 9, 30, 0))
    )
    if attachment:
        builder = builder.attach("cong-van.pdf", attachment, content_type="application/pdf",
                                 content_id="cid:1")
    return write(builder.build())
