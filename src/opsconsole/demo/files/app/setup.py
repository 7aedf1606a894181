from setuptools import setup

setup(name="demo-shop", version="1.0", py_modules=["web", "manage"])
