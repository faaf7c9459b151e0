from django.urls import path

from . import views

app_name = "households"

urlpatterns = [
    path("", views.household_list, name="household-list"),
    path("new/", views.household_create, name="household-create"),
    path("<int:pk>/", views.household_detail, name="household-detail"),
    path("<int:pk>/edit/", views.household_edit, name="household-edit"),
]
