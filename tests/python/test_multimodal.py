"""Images and audio through both formats with the official SDKs: OpenAI image parts reach an
Anthropic upstream as `image` blocks and Anthropic image blocks reach an OpenAI-kind upstream
as `image_url` parts (base64 and URL); audio passes through untouched to OpenAI-kind upstreams;
CEL routes see `request.has_images` / `request.has_audio`; bad or oversized parts get a 400
that names them."""

import base64

import anthropic
import openai
import pytest
from anthropic import Anthropic
from openai import OpenAI

from conftest import DefaultServer, Gateway

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()
URL = "https://example.com/cat.png"


def oai(url):
    return OpenAI(base_url=url, api_key="unused", max_retries=0)


def claude(url):
    return Anthropic(base_url=url, api_key="unused", max_retries=0)


def image_message(text="What is in this picture?"):
    return {"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": URL}},
    ]}


def test_openai_image_parts_become_anthropic_image_blocks(gateway):
    r = oai(gateway.base_url).chat.completions.create(model="anth/claude", messages=[image_message()])
    assert r.choices[0].message.content.startswith("Hello from")
    sent = gateway.mock_requests()[-1]
    assert sent["path"] == "/v1/messages"
    blocks = sent["body"]["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": URL}}


def test_anthropic_image_blocks_become_openai_image_url_parts(gateway):
    m = claude(gateway.url).messages.create(model="up/ok", max_tokens=50, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": URL}},
    ]}])
    assert m.content[0].text.startswith("Hello from")
    sent = gateway.mock_requests()[-1]
    assert sent["path"] == "/v1/chat/completions"
    parts = sent["body"]["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": URL}}


def test_audio_passes_through_and_routes_see_media(gateway):
    audio = {"role": "user", "content": [{"type": "text", "text": "Transcribe"},
                                         {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFF0000WAVE").decode(), "format": "wav"}}]}
    c = oai(gateway.base_url)
    c.chat.completions.create(model="up/ok", messages=[audio])
    assert gateway.mock_requests()[-1]["body"]["messages"][0] == audio
    # CEL routes: images to anth/claude, audio to up/second, text to up/ok.
    for message, route, model in [(image_message(), "images", "anth/claude"), (audio, "audio", "up/second"),
                                  ({"role": "user", "content": "plain"}, "default", "up/ok")]:
        r = c.chat.completions.create(model="router/vision", messages=[message])
        assert (r.metadata["routing"]["route"], r.model) == (route, model)
    # An Anthropic model cannot take audio: a 400 naming the part, not a silent drop.
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="anth/claude", messages=[audio])
    assert "messages[0].content[1]" in e.value.body["message"] and "input_audio" in e.value.body["message"]


def test_bad_and_oversized_parts_are_named(tmp_path):
    gw = Gateway(tmp_path, server_extra="max_media_bytes = 1000")
    try:
        c = oai(gw.base_url)
        big = base64.b64encode(b"\x00" * 3000).decode()
        cases = [
            ({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{big}"}}, "max_media_bytes"),
            ({"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}}, "https URL or a data URL"),
            ({"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}, "not an image type"),
            ({"type": "input_audio", "input_audio": {"data": "aGk="}}, "input_audio.format"),
        ]
        for part, words in cases:
            with pytest.raises(openai.BadRequestError) as e:
                c.chat.completions.create(model="up/ok", messages=[{"role": "user", "content": [{"type": "text", "text": "x"}, part]}])
            assert e.value.body["param"] == "messages[0].content[1]" and words in e.value.body["message"], e.value.body
        with pytest.raises(anthropic.BadRequestError) as e:
            claude(gw.url).messages.create(model="up/ok", max_tokens=10, messages=[{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}])
        assert "messages[0].content[0]" in e.value.message and "document" in e.value.message
    finally:
        gw.stop()


def test_learned_decision_says_non_text_parts_were_present(tmp_path):
    server = DefaultServer(tmp_path)
    try:
        r = oai(server.url + "/v1").chat.completions.create(model="auto", messages=[image_message()])
        assert r.metadata["routing"]["non_text_parts"] == {"images": 2, "audio": 0}
        plain = oai(server.url + "/v1").chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
        assert "non_text_parts" not in plain.metadata["routing"]
    finally:
        server.stop()
