from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from taskforce.columns import enum_column
from taskforce.db import Base
from taskforce.policy.schema import Classification, GroupKind


class Unit(Base):
    """A department or government taking part (单位)."""

    __tablename__ = "unit"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(64))


class Group(Base):
    """领导小组 / 执行小组 / 专项工作组 / 合规专员 / 第三方评估 / 专家库."""

    __tablename__ = "org_group"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[GroupKind] = enum_column(GroupKind)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(64))
    members: Mapped[list[Member]] = relationship(
        back_populates="group", foreign_keys="Member.group_id"
    )


class Member(Base):
    __tablename__ = "member"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    group_id: Mapped[int] = mapped_column(ForeignKey("org_group.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    role: Mapped[str] = mapped_column(String(100))
    full_time: Mapped[bool] = mapped_column(Boolean, default=False)
    on_call: Mapped[bool] = mapped_column(
        Boolean, default=False
    )  # 24-hour emergency contact (§2.4)
    director: Mapped[bool] = mapped_column(Boolean, default=False)  # 执行主任
    backup_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))  # AB角 (§2.2)
    training_hours: Mapped[int] = mapped_column(Integer, default=0)
    clearance: Mapped[Classification] = enum_column(Classification, default=Classification.internal)
    contacts: Mapped[list] = mapped_column(default=list)  # Apprise tags (config/apprise.yml)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    group: Mapped[Group] = relationship(back_populates="members", foreign_keys=[group_id])
    unit: Mapped[Unit] = relationship()
    backup: Mapped[Member | None] = relationship(remote_side=[id])
