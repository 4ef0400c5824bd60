from onnxdoctor.cli import run

run()
