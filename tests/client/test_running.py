"""match_kernels: the one id / id prefix / name lookup behind ``kernel-nanny <cmd> KERNEL``, the daemon and groups."""

from __future__ import annotations

from dataclasses import dataclass

from kernel_nanny.client.running import match_kernels


@dataclass(frozen=True)
class Record:
    kernel_id: str
    name: str | None = None


A = Record("3f2a9c0d11112222", "build")
B = Record("3f2b00001111aaaa")
C = Record("9e0000000000beef", "3f2a")


def test_a_full_id_or_a_name_is_exact():
    assert match_kernels("3f2b00001111aaaa", [A, B, C]) == [B]
    assert match_kernels("build", [A, B, C]) == [A]


def test_a_prefix_finds_every_kernel_whose_id_begins_with_it():
    assert match_kernels("3f2", [A, B, C]) == [A, B]
    assert match_kernels("3f2b", [A, B, C]) == [B]
    assert match_kernels("ab", [A, B, C]) == []


def test_an_exact_name_wins_over_id_prefixes():
    # C is named "3f2a", which is also the beginning of A's id.
    assert match_kernels("3f2a", [A, B, C]) == [C]


def test_without_prefixes_only_exact_ids_and_names_match():
    assert match_kernels("3f2b", [A, B, C], prefix=False) == []
    assert match_kernels("build", [A, B, C], prefix=False) == [A]


def test_any_iterable_of_records_is_read_once():
    assert match_kernels("3f", iter([A, B, C])) == [A, B]
