"""tsgv-demo: the Gradio page served in a subprocess, driven by a real client (gradio_client) and a real browser
(headless Chromium through selenium)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import av
import pytest
from conftest import REPO_ROOT, save_tiny_model

from modeling_tsgv.demo import example_rows

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, minilm_path):
    """A tiny model, an 8-video synthetic world for the examples, and the demo serving them on a free port."""
    from modeling_tsgv.synthetic import generate

    folder = tmp_path_factory.mktemp("demo")
    save_tiny_model(folder / "model", minilm_path, inference_window_s=20.0)
    generate(folder / "world", num_videos=8, seed=0, preset="easy", progress=False)
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "modeling_tsgv.demo", "--model", str(folder / "model"), "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--examples", str(folder / "world")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"the demo did not start: {server.stdout.read()[-3000:]}")
            time.sleep(0.5)
    video = str(next((folder / "world" / "videos").glob("*.mp4")))
    yield {"url": url, "world": folder / "world", "video": video, "folder": folder}
    server.terminate()
    server.wait(timeout=30)


def test_examples_come_from_the_generated_test_videos(demo):
    rows = example_rows(str(demo["world"]))
    assert rows and all(os.path.isfile(path) and queries.strip() and top_k == 3 for path, queries, top_k in rows)
    assert example_rows(str(demo["folder"] / "nothing")) == []


def test_a_client_uploads_a_video_and_gets_spans_picture_and_clips(demo):
    from gradio_client import Client, handle_file

    client = Client(demo["url"], verbose=False)
    queries = ["the red disc slides left", "a blue box grows"]
    picture, table, clips = client.predict(handle_file(demo["video"]), "\n".join(queries), 2, api_name="/ground")
    assert picture.endswith(".png") and os.path.getsize(picture) > 10_000
    assert table["headers"] == ["query", "rank", "start (s)", "end (s)", "score"]
    assert [row[:2] for row in table["data"]] == [[queries[0], 1], [queries[0], 2], [queries[1], 1], [queries[1], 2]]
    with av.open(demo["video"]) as container:
        duration_s = float(container.duration / 1e6)
    assert all(0 <= row[2] <= row[3] <= duration_s + 0.01 for row in table["data"])
    assert len(clips) == 2 and all(clip["video"].endswith(".mp4") for clip in clips)
    with av.open(clips[0]["video"]) as container:  # a playable clip
        assert sum(1 for _ in container.decode(video=0)) > 0


@pytest.mark.parametrize(
    "video,queries,message",
    [("GOOD", "   \n ", "type at least one query"), ("BROKEN", "a ball", "cannot decode video")],
)
def test_errors_appear_as_messages(demo, tmp_path, video, queries, message):
    from gradio_client import Client, handle_file

    if video == "BROKEN":
        path = tmp_path / "broken.mp4"
        path.write_bytes(b"not a video at all" * 100)
    else:
        path = demo["video"]
    client = Client(demo["url"], verbose=False)
    with pytest.raises(Exception, match=message) as error:
        client.predict(handle_file(str(path)), queries, 3, api_name="/ground")
    assert "Traceback" not in str(error.value)


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")) or not shutil.which("chromedriver"),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
def test_a_browser_grounds_a_query_and_the_timeline_is_on_the_page(demo, tmp_path):
    pytest.importorskip("selenium")
    sys.path.insert(0, str(REPO_ROOT / "docs"))
    from demo_screenshot import ground_in_browser

    shot = tmp_path / "demo.png"
    result = ground_in_browser(demo["url"], demo["video"], ["the red disc slides left", "a blue box grows"], str(shot))
    assert result["timeline_width_px"] > 0  # the timeline picture loaded in the page
    assert "the red disc slides left" in result["page_text"] and "a blue box grows" in result["page_text"]
    assert shot.stat().st_size > 20_000
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_answer_in_one_line(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "tsgv-demo")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "modeling_tsgv.demo"]
    done = subprocess.run([*command, "--port", "0", "--model", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == "tsgv-demo: error: --port must be in 1..65535, got 0"
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "--model is needed" in done.stderr
