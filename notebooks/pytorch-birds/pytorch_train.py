# Port of the Azure ML v1 sample "Train PyTorch models at scale"
# (how-to-use-azureml/ml-frameworks/pytorch/train-hyperparameter-tune-deploy-with-pytorch/
#  pytorch_train.py), itself based on the PyTorch transfer-learning tutorial:
# https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html
#
# Differences from the sample, needed for an offline CPU-only machine:
#   * no pretrained-weight download: ResNet-18 starts from random weights
#     unless --pretrained_weights points at a local state-dict file;
#   * --batch_size / --image_size / --num_workers / --seed are arguments;
#   * the train augmentation keeps the orientation of the image content
#     (no rotation), RandomResizedCrop uses a milder scale range;
#   * metrics go to kernel_lib.tracking.Run instead of azureml.core.run.Run.
#
# The whole model is saved with torch.save(model, ...), as in the sample.
# To load it back with torch >= 2.6 you must pass weights_only=False:
#     model = torch.load("outputs/model.pt", weights_only=False)

from __future__ import division, print_function

import argparse
import copy
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler
from torchvision import datasets, models, transforms

from kernel_lib.tracking import Run

# get the run context (the tracking API's equivalent of azureml's Run)
run = Run.get_context()


def get_device():
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        return torch.device("cuda:%d" % local_rank)
    return torch.device("cpu")


def load_data(data_dir, image_size=224, batch_size=16, num_workers=0):
    """Load the train/val data."""

    # Data augmentation and normalization for training
    # Just normalization for validation
    data_transforms = {
        'train': transforms.Compose([
            transforms.RandomResizedCrop(image_size, scale=(0.5, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        ]),
        'val': transforms.Compose([
            transforms.Resize(int(round(image_size * 256 / 224))),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        ]),
    }

    image_datasets = {x: datasets.ImageFolder(os.path.join(data_dir, x),
                                              data_transforms[x])
                      for x in ['train', 'val']}
    dataloaders = {x: torch.utils.data.DataLoader(image_datasets[x],
                                                  batch_size=batch_size,
                                                  shuffle=(x == 'train'),
                                                  num_workers=num_workers)
                   for x in ['train', 'val']}
    dataset_sizes = {x: len(image_datasets[x]) for x in ['train', 'val']}
    class_names = image_datasets['train'].classes

    return dataloaders, dataset_sizes, class_names


def train_model(model, criterion, optimizer, scheduler, num_epochs,
                dataloaders, dataset_sizes, device):
    """Train the model."""

    since = time.time()

    best_model_wts = copy.deepcopy(model.state_dict())
    best_acc = 0.0

    for epoch in range(num_epochs):
        print('Epoch {}/{}'.format(epoch, num_epochs - 1))
        print('-' * 10)

        # Each epoch has a training and validation phase
        for phase in ['train', 'val']:
            if phase == 'train':
                model.train()  # Set model to training mode
            else:
                model.eval()   # Set model to evaluate mode

            running_loss = 0.0
            running_corrects = 0

            # Iterate over data.
            for inputs, labels in dataloaders[phase]:
                inputs = inputs.to(device)
                labels = labels.to(device)

                # zero the parameter gradients
                optimizer.zero_grad()

                # forward
                # track history if only in train
                with torch.set_grad_enabled(phase == 'train'):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels)

                    # backward + optimize only if in training phase
                    if phase == 'train':
                        loss.backward()
                        optimizer.step()

                # statistics
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data).item()

            if phase == 'train':
                scheduler.step()

            epoch_loss = running_loss / dataset_sizes[phase]
            epoch_acc = running_corrects / dataset_sizes[phase]

            print('{} Loss: {:.4f} Acc: {:.4f}'.format(
                phase, epoch_loss, epoch_acc))

            run.log('{}_loss'.format(phase), float(epoch_loss), step=epoch)
            run.log('{}_acc'.format(phase), float(epoch_acc), step=epoch)

            # deep copy the model
            if phase == 'val' and epoch_acc > best_acc:
                best_acc = epoch_acc
                best_model_wts = copy.deepcopy(model.state_dict())

        run.log('epoch', epoch, step=epoch)
        print()

    time_elapsed = time.time() - since
    print('Training complete in {:.0f}m {:.0f}s'.format(
        time_elapsed // 60, time_elapsed % 60))
    print('Best val Acc: {:.4f}'.format(best_acc))

    # log the best val accuracy to AML run
    run.log('best_val_acc', float(best_acc))

    # load best model weights
    model.load_state_dict(best_model_wts)
    return model


def fine_tune_model(num_epochs, data_dir, learning_rate, momentum,
                    batch_size=16, image_size=224, num_workers=0,
                    pretrained_weights=None):
    """Load a ResNet-18 and fine-tune it on the fowl data."""

    # log the hyperparameter metrics to the AML run
    run.log('lr', float(learning_rate))
    run.log('momentum', float(momentum))

    device = get_device()
    print('Using device: {}'.format(device))

    dataloaders, dataset_sizes, class_names = load_data(
        data_dir, image_size=image_size, batch_size=batch_size,
        num_workers=num_workers)
    print('Classes: {}  train: {}  val: {}'.format(
        class_names, dataset_sizes['train'], dataset_sizes['val']))

    # never download: random init, or a local ImageNet state dict
    model_ft = models.resnet18(weights=None)
    if pretrained_weights:
        state = torch.load(pretrained_weights, map_location='cpu',
                           weights_only=True)
        model_ft.load_state_dict(state)
        print('Loaded pretrained weights from {}'.format(pretrained_weights))
    num_ftrs = model_ft.fc.in_features
    model_ft.fc = nn.Linear(num_ftrs, len(class_names))

    model_ft = model_ft.to(device)

    criterion = nn.CrossEntropyLoss()

    # Observe that all parameters are being optimized
    optimizer_ft = optim.SGD(model_ft.parameters(),
                             lr=learning_rate, momentum=momentum)

    # Decay LR by a factor of 0.1 every 7 epochs
    exp_lr_scheduler = lr_scheduler.StepLR(
        optimizer_ft, step_size=7, gamma=0.1)

    model = train_model(model_ft, criterion, optimizer_ft, exp_lr_scheduler,
                        num_epochs, dataloaders, dataset_sizes, device)

    return model


def main():
    print("Torch version:", torch.__version__)

    # get command-line arguments
    parser = argparse.ArgumentParser()
    parser.add_argument('--data_dir', type=str, required=True,
                        help='directory of training data (ImageFolder with '
                             'train/ and val/)')
    parser.add_argument('--num_epochs', type=int, default=25,
                        help='number of epochs to train')
    parser.add_argument('--output_dir', type=str, default='./outputs',
                        help='output directory')
    parser.add_argument('--learning_rate', type=float,
                        default=0.001, help='learning rate')
    parser.add_argument('--momentum', type=float, default=0.9, help='momentum')
    parser.add_argument('--batch_size', type=int, default=16,
                        help='mini-batch size')
    parser.add_argument('--image_size', type=int, default=224,
                        help='side of the (square) network input')
    parser.add_argument('--pretrained_weights', type=str, default=None,
                        help='optional local resnet18 state-dict file; '
                             'nothing is ever downloaded')
    parser.add_argument('--num_workers', type=int, default=0,
                        help='DataLoader worker processes')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed for torch/numpy/random')
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    model = fine_tune_model(args.num_epochs, args.data_dir,
                            args.learning_rate, args.momentum,
                            batch_size=args.batch_size,
                            image_size=args.image_size,
                            num_workers=args.num_workers,
                            pretrained_weights=args.pretrained_weights)
    os.makedirs(args.output_dir, exist_ok=True)
    model_path = os.path.join(args.output_dir, 'model.pt')
    torch.save(model, model_path)
    print('Saved model to {}'.format(model_path))


if __name__ == "__main__":
    main()
