"""Subprocess half of the SIGKILL resume test: train slowly (a sleep per step changes no numbers) until the
test kills this process. argv: out_dir steps sleep_s"""
import sys

from _fixtures import make_loss, resume_config, tiny_net, toy_data

from bench.train import train

out_dir, steps, sleep_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
x, y = toy_data()
train(tiny_net(), make_loss(sleep_s=sleep_s), (x, y), resume_config(steps=steps), out_dir)
