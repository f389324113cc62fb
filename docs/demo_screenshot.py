"""Drive the tsgv demo page in a real browser (headless Chromium through selenium) and save a screenshot.

    python docs/demo_screenshot.py --url http://127.0.0.1:7860 --video /abs/path/VIDEO --queries "q one" "q two" --out demo.png

Start the demo first (`tsgv-demo --model outputs/tsgv-synthetic`). Needs Debian's `chromium` and `chromium-driver`
(`apt-get install chromium chromium-driver`) and `pip install selenium`. tests/test_demo.py runs the same function;
the README's screenshot was made with it.
"""

import argparse
import shutil
import time


def browser():
    """A headless Chromium driven by the system chromedriver (no download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def ground_in_browser(url: str, video: str, queries: list[str], out_png: str, timeout_s: float = 120) -> dict:
    """Load the page, upload `video`, type `queries`, press Ground, wait for the timeline picture, save a
    screenshot to `out_png`. Returns {"timeline_width_px", "page_text", "seconds"} read from the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    start = time.perf_counter()
    try:
        driver.get(url)
        wait = WebDriverWait(driver, timeout_s)
        upload = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#video input[type=file]")))
        upload.send_keys(video)
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#video video")))
        box = driver.find_element(By.CSS_SELECTOR, "#queries textarea")
        box.clear()
        box.send_keys("\n".join(queries))
        driver.find_element(By.CSS_SELECTOR, "#ground").click()
        picture = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, "#timeline img")))
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture))
        time.sleep(0.5)  # let the gallery's clips settle before the picture is taken
        driver.save_screenshot(out_png)
        return {
            "timeline_width_px": driver.execute_script("return arguments[0].naturalWidth", picture),
            "page_text": driver.find_element(By.TAG_NAME, "body").text,
            "seconds": time.perf_counter() - start,
        }
    finally:
        driver.quit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--video", required=True)
    parser.add_argument("--queries", nargs="+", required=True)
    parser.add_argument("--out", default="demo.png")
    args = parser.parse_args()
    result = ground_in_browser(args.url, args.video, args.queries, args.out)
    print(f"timeline {result['timeline_width_px']} px wide, {result['seconds']:.1f} s; screenshot: {args.out}")
