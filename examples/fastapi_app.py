"""A FastAPI app that starts a DSPy run from a POST and streams it to an EventSource page.

    pip install 'streamll[redis,web]' fastapi
    STREAMLL_URL='redis://localhost:6379/0?stream=streamll&per_execution=true' uvicorn examples.fastapi_app:app

Open http://127.0.0.1:8000/ and ask. ``POST /ask`` returns the execution id at
once and runs the program in the background; the page reads
``/streamll/executions/<id>/events`` (the relay, mounted below), so any replica
of this app can serve the stream, and a reconnect resumes where it stopped.

Without ``EXAMPLE_LM_MODEL`` the app answers from streamll's offline LM server
(no API key, no network); with it (e.g. ``openai/gpt-4o-mini``) from a real
provider.
"""

from __future__ import annotations

import asyncio
import os

import dspy
import streamll
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from streamll.web import create_app

STREAMLL_URL = os.environ.get("STREAMLL_URL", "redis://localhost:6379/0?stream=streamll&per_execution=true")
streamll.configure(sinks=[STREAMLL_URL])


def _lm() -> dspy.LM:
    model = os.environ.get("EXAMPLE_LM_MODEL")
    if model:
        return dspy.LM(model, cache=False)
    from streamll.testing import OfflineLMServer

    server = OfflineLMServer(token_delay=float(os.environ.get("EXAMPLE_TOKEN_DELAY", "0.03"))).start()
    return server.lm()


LM = _lm()


@streamll.instrument(stream_fields=["reasoning", "answer"])
class ReasoningQA(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)

    async def aforward(self, question: str) -> dspy.Prediction:
        return await self.cot.acall(question=question)


program = ReasoningQA()
app = FastAPI(title="streamll example")
app.mount("/streamll", create_app(STREAMLL_URL))
_background: set[asyncio.Task[None]] = set()


class Question(BaseModel):
    question: str


@app.post("/ask")
async def ask(body: Question) -> dict[str, str]:
    """Start a run and return its id before the program has produced anything."""
    run = streamll.execution()
    task = asyncio.create_task(_answer(run, body.question))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return {"execution_id": run.execution_id}


async def _answer(run: streamll.ExecutionRun, question: str) -> None:
    with run, dspy.context(lm=LM):
        await program.acall(question=question)


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return PAGE


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ask</title>
<style>body{font:15px system-ui;max-width:760px;margin:2em auto} .box{white-space:pre-wrap;border:1px solid #ccc;
padding:.6em;min-height:2em;margin:.4em 0} h3{margin:.8em 0 0;font-size:13px;color:#555}</style></head>
<body>
<form id="ask"><input id="question" size="60" value="What is machine learning?"> <button>Ask</button></form>
<h3>reasoning</h3><div class="box" id="reasoning"></div>
<h3>answer</h3><div class="box" id="answer"></div>
<p id="status"></p>
<script>
document.getElementById("ask").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  for (const id of ["reasoning", "answer"]) document.getElementById(id).textContent = "";
  const status = document.getElementById("status");
  status.textContent = "running";
  const response = await fetch("/ask", {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({question: document.getElementById("question").value})});
  const {execution_id} = await response.json();
  // EventSource reconnects by itself and sends Last-Event-ID: the relay resumes after it.
  const source = new EventSource(`/streamll/executions/${execution_id}/events`);
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.event_type === "token") {
      const box = document.getElementById(event.data.field);
      if (box) box.textContent += event.data.token;
    }
    if ((event.event_type === "end" || event.event_type === "error") && event.parent_id === null) {
      source.close();
      status.textContent = event.event_type === "end" ? "done" : "failed: " + event.data.error_message;
    }
  };
});
</script></body></html>
"""
