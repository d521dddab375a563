"""Published weights birdstream knows by name: where to fetch them and what their sha256 must be."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE_URL = "https://huggingface.co/birder-project"
DEFAULT_WEIGHTS = "vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-arabian-peninsula"


@dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint: its name, network, file digest and size."""

    name: str
    network: str
    sha256: str
    size_mib: float
    resolution: tuple[int, int]

    @property
    def max_bytes(self) -> int:
        """The most bytes a download may bring: the published size (given to 0.1 MiB) rounded up."""
        return int((self.size_mib + 0.05) * 1024 * 1024) + 1

    @property
    def file_name(self) -> str:
        return f"{self.name}.pt"

    def url(self, base_url: str = DEFAULT_BASE_URL) -> str:
        """``<base>/<name>/resolve/main/<name>.pt`` (the Hugging Face layout)."""
        return f"{base_url.rstrip('/')}/{self.name}/resolve/main/{self.file_name}"


KNOWN_WEIGHTS: dict[str, PublishedWeights] = {
    w.name: w
    for w in (
        PublishedWeights(
            name="vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-arabian-peninsula",
            network="vit_parallel_s16_18x2_ls_avg",
            sha256="561734d8271eff9831ab4fa8a0e8f80b6bfeb17ea456ea0fc184315b9aa2d837",
            size_mib=247.1,
            resolution=(384, 384),
        ),
        PublishedWeights(
            name="vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-eu-common",
            network="vit_parallel_s16_18x2_ls_avg",
            sha256="1c697b42eac7150121325335b0d41ab5643ecab7afd04216b5088a538fcf94bb",
            size_mib=247.1,
            resolution=(384, 384),
        ),
        PublishedWeights(
            name="vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-il-all",
            network="vit_parallel_s16_18x2_ls_avg",
            sha256="aaf3963ea12373a358cce77c46ee5aa2a5ca58bcb799e8748e84605b82c9b81b",
            size_mib=246.8,
            resolution=(384, 384),
        ),
    )
}

