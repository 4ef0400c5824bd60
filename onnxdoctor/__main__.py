from onnxdoctor.cli import main

main()
