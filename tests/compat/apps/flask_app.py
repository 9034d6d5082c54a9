"""A Flask app behind apig-wsgi."""

from __future__ import annotations

import logging

from apig_wsgi import make_lambda_handler
from flask import Flask, Response, jsonify, make_response, request

log = logging.getLogger(__name__)
app = Flask(__name__)


@app.get("/items/<int:item_id>")
def item(item_id: int) -> Response:
    log.warning("item %d", item_id)
    return jsonify(item_id=item_id, q=request.args.getlist("q"), cookie=request.cookies.get("a"))


@app.post("/orders")
def order() -> tuple[Response, int]:
    data = request.get_json()
    return jsonify(item=data["item"], total=data["quantity"] * 3), 201


@app.get("/cookies")
def cookies() -> Response:
    response = make_response("cookies set")
    response.set_cookie("one", "1")
    response.set_cookie("two", "2", httponly=True)
    response.headers["x-custom"] = "yes"
    return response


@app.get("/binary")
def binary() -> Response:
    return Response(bytes(range(256)), mimetype="image/png")


@app.get("/fail")
def fail() -> str:
    raise RuntimeError("the view failed")


handler = make_lambda_handler(app, binary_support=True)
